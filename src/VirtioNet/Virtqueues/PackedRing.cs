using System.Runtime.CompilerServices;

namespace VirtioNet.Virtqueues;

/// <summary>
/// The fixed parts of the packed virtqueue format: structure sizes, field offsets and flag values, each under its
/// spec name, and the two rules both sides apply to them (is a descriptor used; is an event due).
/// Offsets that depend on the queue size live in <see cref="PackedQueueLayout"/>. Ref: virtio v1.2 §2.8.
/// </summary>
public static class PackedRing
{
    /// <summary>The largest queue size a packed virtqueue may have (2^15). Ref: virtio v1.2 §2.8.</summary>
    public const int MaxSize = 32768;

    /// <summary>sizeof(struct pvirtq_desc): le64 addr, le32 len, le16 id, le16 flags. Ref: virtio v1.2 §2.8.13.</summary>
    public const int DescriptorSize = 16;

    /// <summary>pvirtq_desc.addr (le64), offset 0: the element's device address (unused in a used descriptor).</summary>
    public const int DescriptorAddrOffset = 0;

    /// <summary>pvirtq_desc.len (le32), offset 8: the element's length; in a used descriptor, the bytes written.</summary>
    public const int DescriptorLenOffset = 8;

    /// <summary>pvirtq_desc.id (le16), offset 12: the Buffer ID the chain is known by.</summary>
    public const int DescriptorIdOffset = 12;

    /// <summary>pvirtq_desc.flags (le16), offset 14: NEXT, WRITE, INDIRECT, AVAIL, USED.</summary>
    public const int DescriptorFlagsOffset = 14;

    /// <summary>Alignment of the Descriptor Ring. Ref: virtio v1.2 §2.8.10.1.</summary>
    public const int DescriptorRingAlignment = 16;

    /// <summary>Alignment of each Event Suppression structure (driver and device). Ref: virtio v1.2 §2.8.10.1.</summary>
    public const int EventSuppressionAlignment = 4;

    /// <summary>sizeof(struct pvirtq_event_suppress): le16 desc (off/wrap), le16 flags. Ref: virtio v1.2 §2.8.14.</summary>
    public const int EventSuppressionSize = 4;

    /// <summary>pvirtq_event_suppress.desc (le16), offset 0: desc_event_off (bits 0-14) and desc_event_wrap (bit 15).</summary>
    public const int EventOffWrapOffset = 0;

    /// <summary>pvirtq_event_suppress.flags (le16), offset 2: desc_event_flags (bits 0-1), the rest reserved.</summary>
    public const int EventFlagsOffset = 2;

    /// <summary>The desc_event_off bits of the off/wrap field.</summary>
    public const ushort EventOffsetMask = 0x7FFF;

    /// <summary>Position of desc_event_wrap in the off/wrap field.</summary>
    public const int EventWrapShift = 15;

    /// <summary>The desc_event_flags bits of the flags field.</summary>
    public const ushort EventFlagsMask = 0x3;

    /// <summary>VIRTQ_DESC_F_NEXT (1): the list continues in the next ring slot. Ref: virtio v1.2 §2.8.6.</summary>
    public const ushort DescFlagNext = 1;

    /// <summary>
    /// VIRTQ_DESC_F_WRITE (2): the element is device-writable; in a used descriptor, the device wrote data and len is
    /// meaningful. Ref: virtio v1.2 §2.8.3, §2.8.4.
    /// </summary>
    public const ushort DescFlagWrite = 2;

    /// <summary>VIRTQ_DESC_F_INDIRECT (4): the element is a table of packed descriptors. Ref: virtio v1.2 §2.8.7.</summary>
    public const ushort DescFlagIndirect = 4;

    /// <summary>VIRTQ_DESC_F_AVAIL (1 &lt;&lt; 7). Ref: virtio v1.2 §2.8.1.</summary>
    public const ushort DescFlagAvail = 1 << 7;

    /// <summary>VIRTQ_DESC_F_USED (1 &lt;&lt; 15). Ref: virtio v1.2 §2.8.1.</summary>
    public const ushort DescFlagUsed = 1 << 15;

    /// <summary>RING_EVENT_FLAGS_ENABLE (0): send every event. Ref: virtio v1.2 §2.8.10.</summary>
    public const ushort RingEventFlagsEnable = 0;

    /// <summary>RING_EVENT_FLAGS_DISABLE (1): send no events. Ref: virtio v1.2 §2.8.10.</summary>
    public const ushort RingEventFlagsDisable = 1;

    /// <summary>
    /// RING_EVENT_FLAGS_DESC (2): send an event only when the descriptor named by desc_event_off/wrap is made
    /// available (or used). Only valid with VIRTIO_F_EVENT_IDX. Ref: virtio v1.2 §2.8.10.
    /// </summary>
    public const ushort RingEventFlagsDesc = 2;

    /// <summary>
    /// The AVAIL and USED bits that mark a descriptor available under wrap counter <paramref name="wrap"/>:
    /// AVAIL equal to it, USED its inverse. Ref: virtio v1.2 §2.8.1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort AvailableFlags(bool wrap) => wrap ? DescFlagAvail : DescFlagUsed;

    /// <summary>The AVAIL and USED bits that mark a descriptor used under wrap counter <paramref name="wrap"/>: both equal to it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort UsedFlags(bool wrap) => wrap ? (ushort)(DescFlagAvail | DescFlagUsed) : (ushort)0;

    /// <summary>True when <paramref name="flags"/> mark a used descriptor for wrap counter <paramref name="wrap"/>. Ref: virtio v1.2 §2.8.1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsUsed(ushort flags, bool wrap) => (flags & (DescFlagAvail | DescFlagUsed)) == UsedFlags(wrap);

    /// <summary>True when <paramref name="flags"/> mark an available descriptor for wrap counter <paramref name="wrap"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsAvailable(ushort flags, bool wrap) => (flags & (DescFlagAvail | DescFlagUsed)) == AvailableFlags(wrap);

    /// <summary>The off/wrap value naming ring slot <paramref name="offset"/> in the lap of wrap counter <paramref name="wrap"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort EventOffWrap(int offset, bool wrap) => (ushort)((offset & EventOffsetMask) | (wrap ? 1 << EventWrapShift : 0));

    /// <summary>
    /// The packed form of the event-index rule: true when the <paramref name="count"/> descriptors that ended at ring
    /// slot <paramref name="newOffset"/> (wrap counter <paramref name="newWrap"/> at that slot) include the descriptor
    /// named by <paramref name="eventOffWrap"/>. The driver applies it to the device's structure before notifying, the
    /// device to the driver's before interrupting. Ref: virtio v1.2 §2.8.10, §2.8.14.
    /// </summary>
    /// <remarks>
    /// An event named with the other wrap counter lies in the previous lap, so it is moved back by a ring size; the
    /// range test is then <see cref="VirtqueueNotification.NeedEvent"/> in 16-bit arithmetic, which holds because a
    /// ring has at most 2^15 slots and a batch at most one ring.
    /// </remarks>
    /// <param name="eventOffWrap">desc_event_off and desc_event_wrap as the other side wrote them.</param>
    /// <param name="newOffset">The slot after the last descriptor of the batch.</param>
    /// <param name="newWrap">The wrap counter that goes with <paramref name="newOffset"/>.</param>
    /// <param name="count">Descriptors in the batch, from 0 to the ring size.</param>
    /// <param name="size">The ring size.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool NeedEvent(ushort eventOffWrap, int newOffset, bool newWrap, int count, int size)
    {
        int eventOffset = eventOffWrap & EventOffsetMask;
        bool eventWrap = (eventOffWrap >> EventWrapShift) != 0;
        if (eventWrap != newWrap)
        {
            eventOffset -= size;
        }

        return VirtqueueNotification.NeedEvent((ushort)eventOffset, (ushort)newOffset, (ushort)(newOffset - count));
    }

    /// <summary>
    /// The off/wrap value a driver writes in its event suppression structure (with RING_EVENT_FLAGS_DESC) to be
    /// notified only once about three quarters of its in-flight descriptors have been used (Linux's
    /// virtqueue_enable_cb_delayed): the slot 3/4 of <paramref name="inFlightDescriptors"/> after
    /// <paramref name="nextUsed"/>, with the wrap counter flipped when that passes the end of the ring.
    /// Ref: virtio v1.2 §2.8.10, §2.8.14.
    /// </summary>
    /// <param name="nextUsed">The slot the driver will find the next used descriptor in.</param>
    /// <param name="usedWrap">The Used Ring Wrap Counter that goes with <paramref name="nextUsed"/>.</param>
    /// <param name="inFlightDescriptors">Descriptors made available and not yet taken back (0 to the ring size).</param>
    /// <param name="size">The ring size.</param>
    public static ushort DelayedEventOffWrap(int nextUsed, bool usedWrap, int inFlightDescriptors, int size)
    {
        (int offset, bool wrap) = DelayedEventSlot(nextUsed, usedWrap, inFlightDescriptors, size);
        return EventOffWrap(offset, wrap);
    }

    /// <summary>
    /// The slot and wrap counter <see cref="DelayedEventOffWrap"/> names: where the driver looks, after asking, for a
    /// descriptor used before the request was seen (then no notification will come).
    /// </summary>
    public static (int Offset, bool Wrap) DelayedEventSlot(int nextUsed, bool usedWrap, int inFlightDescriptors, int size)
    {
        int slot = nextUsed + (inFlightDescriptors * 3 / 4);
        bool wrap = usedWrap;
        if (slot >= size)
        {
            slot -= size;
            wrap = !wrap;
        }

        return (slot, wrap);
    }
}
