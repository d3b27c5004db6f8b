namespace VirtioNet.Tests.Virtqueues;

/// <summary>The two virtqueue layouts, for tests of the contract both implement (<see cref="VirtioNet.Virtqueues.IVirtqueue"/>). Ref: virtio v1.2 §2.7, §2.8.</summary>
public enum RingLayout
{
    /// <summary>Descriptor table, available ring, used ring (§2.7).</summary>
    Split,

    /// <summary>One ring of descriptors, with wrap counters (§2.8).</summary>
    Packed,
}
