namespace VirtioNet.Virtqueues;

/// <summary>The virtqueue layout negotiation chose (VIRTIO_F_RING_PACKED). Ref: virtio v1.2 §2.7, §2.8.</summary>
public enum RingLayout
{
    /// <summary>Split virtqueues: descriptor table, available ring, used ring (§2.7).</summary>
    Split,

    /// <summary>Packed virtqueues: one descriptor ring with wrap counters (§2.8).</summary>
    Packed,
}
