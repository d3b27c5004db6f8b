using System.Runtime.CompilerServices;

namespace VirtioNet.Virtqueues;

/// <summary>The event-index rule both sides of a split ring use with VIRTIO_F_EVENT_IDX.</summary>
public static class VirtqueueNotification
{
    /// <summary>
    /// True when moving an index from <paramref name="oldIdx"/> to <paramref name="newIdx"/> passes
    /// <paramref name="eventIdx"/>, that is when eventIdx lies in [oldIdx, newIdx) modulo 2^16: the other side asked to
    /// hear about the entry at eventIdx and this batch wrote it. The driver applies it to avail_event before notifying,
    /// the device to used_event before interrupting. Ref: virtio v1.2 §2.7.7 and §2.7.10.
    /// </summary>
    /// <remarks>
    /// Every subtraction is done in 16 bits, so the rule holds across the wrap of the indexes at 65535;
    /// a batch of 0 entries never needs an event.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool NeedEvent(ushort eventIdx, ushort newIdx, ushort oldIdx)
        => (ushort)(newIdx - eventIdx - 1) < (ushort)(newIdx - oldIdx);
}
