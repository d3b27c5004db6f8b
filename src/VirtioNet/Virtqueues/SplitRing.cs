namespace VirtioNet.Virtqueues;

/// <summary>
/// The fixed parts of the split virtqueue format: structure sizes, field offsets and flag values, each under its
/// spec name. Offsets that depend on the queue size live in <see cref="SplitQueueLayout"/>. Ref: virtio v1.2 §2.7.
/// </summary>
public static class SplitRing
{
    /// <summary>The largest queue size a split virtqueue may have. Ref: virtio v1.2 §2.7.</summary>
    public const int MaxSize = 32768;

    /// <summary>sizeof(struct virtq_desc): le64 addr, le32 len, le16 flags, le16 next. Ref: virtio v1.2 §2.7.5.</summary>
    public const int DescriptorSize = 16;

    /// <summary>virtq_desc.addr (le64), offset 0: the buffer's device address.</summary>
    public const int DescriptorAddrOffset = 0;

    /// <summary>virtq_desc.len (le32), offset 8: the buffer's length.</summary>
    public const int DescriptorLenOffset = 8;

    /// <summary>virtq_desc.flags (le16), offset 12: VIRTQ_DESC_F_NEXT, _WRITE, _INDIRECT.</summary>
    public const int DescriptorFlagsOffset = 12;

    /// <summary>virtq_desc.next (le16), offset 14: the next descriptor of the chain when VIRTQ_DESC_F_NEXT is set.</summary>
    public const int DescriptorNextOffset = 14;

    /// <summary>Alignment of the descriptor table (modern interface). Ref: virtio v1.2 §2.7, table of alignments.</summary>
    public const int DescriptorTableAlignment = 16;

    /// <summary>Alignment of the available ring (modern interface). Ref: virtio v1.2 §2.7.</summary>
    public const int AvailableRingAlignment = 2;

    /// <summary>Alignment of the used ring (modern interface). Ref: virtio v1.2 §2.7.</summary>
    public const int UsedRingAlignment = 4;

    /// <summary>virtq_avail.flags (le16), offset 0 of the available ring. Ref: virtio v1.2 §2.7.6.</summary>
    public const int AvailFlagsOffset = 0;

    /// <summary>virtq_avail.idx (le16), offset 2: where the driver will put the next entry, modulo 2^16.</summary>
    public const int AvailIdxOffset = 2;

    /// <summary>virtq_avail.ring[] (le16 each), offset 4; used_event follows the last entry.</summary>
    public const int AvailRingOffset = 4;

    /// <summary>Size of one available ring entry (a descriptor head index).</summary>
    public const int AvailEntrySize = 2;

    /// <summary>virtq_used.flags (le16), offset 0 of the used ring. Ref: virtio v1.2 §2.7.8.</summary>
    public const int UsedFlagsOffset = 0;

    /// <summary>virtq_used.idx (le16), offset 2: where the device will put the next entry, modulo 2^16.</summary>
    public const int UsedIdxOffset = 2;

    /// <summary>virtq_used.ring[] (struct virtq_used_elem each), offset 4; avail_event follows the last entry.</summary>
    public const int UsedRingOffset = 4;

    /// <summary>sizeof(struct virtq_used_elem): le32 id, le32 len.</summary>
    public const int UsedElemSize = 8;

    /// <summary>virtq_used_elem.id (le32), offset 0: the head of the returned chain.</summary>
    public const int UsedElemIdOffset = 0;

    /// <summary>virtq_used_elem.len (le32), offset 4: bytes the device wrote into the chain.</summary>
    public const int UsedElemLenOffset = 4;

    /// <summary>VIRTQ_DESC_F_NEXT (1): the chain continues via the next field. Ref: virtio v1.2 §2.7.5.</summary>
    public const ushort DescFlagNext = 1;

    /// <summary>VIRTQ_DESC_F_WRITE (2): the buffer is device-writable (otherwise device-readable). Ref: virtio v1.2 §2.7.5.</summary>
    public const ushort DescFlagWrite = 2;

    /// <summary>VIRTQ_DESC_F_INDIRECT (4): the buffer holds an indirect descriptor table. Ref: virtio v1.2 §2.7.5.3.</summary>
    public const ushort DescFlagIndirect = 4;

    /// <summary>VIRTQ_AVAIL_F_NO_INTERRUPT (1) in virtq_avail.flags: the driver does not want used-buffer notifications. Ref: virtio v1.2 §2.7.7.</summary>
    public const ushort AvailFlagNoInterrupt = 1;

    /// <summary>VIRTQ_USED_F_NO_NOTIFY (1) in virtq_used.flags: the device does not want available-buffer notifications. Ref: virtio v1.2 §2.7.10.</summary>
    public const ushort UsedFlagNoNotify = 1;

    /// <summary>
    /// The used_event a driver writes to be notified only once about three quarters of its outstanding chains have been
    /// used (Linux's virtqueue_enable_cb_delayed): <paramref name="lastUsedIdx"/> plus 3/4 of the chains between it and
    /// <paramref name="availIdx"/>, in 16-bit arithmetic, so the result wraps with the indexes. With one chain or none
    /// outstanding it is <paramref name="lastUsedIdx"/> itself (the next used entry). Ref: virtio v1.2 §2.7.10.
    /// </summary>
    /// <param name="lastUsedIdx">The used index the driver has taken entries up to.</param>
    /// <param name="availIdx">The available index published.</param>
    public static ushort DelayedUsedEvent(ushort lastUsedIdx, ushort availIdx) =>
        (ushort)(lastUsedIdx + DelayedEventDistance((ushort)(availIdx - lastUsedIdx)));

    /// <summary>
    /// How many entries past the last one taken a delayed used-buffer notification waits for: 3/4 of
    /// <paramref name="outstanding"/>, rounded down (the distance from the last used index to the used_event of
    /// <see cref="DelayedUsedEvent"/>). A used index further than this past the last one taken means the notification's
    /// point was crossed before the driver asked for it, and none will come.
    /// </summary>
    public static ushort DelayedEventDistance(ushort outstanding) => (ushort)(outstanding * 3 / 4);
}
