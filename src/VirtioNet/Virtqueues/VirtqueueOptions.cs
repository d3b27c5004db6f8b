namespace VirtioNet.Virtqueues;

/// <summary>
/// How a virtqueue is set up: the negotiated ring features and the layout the transport needs.
/// Each property validates when set.
/// </summary>
public sealed record VirtqueueOptions
{
    /// <summary>The default <see cref="MaxIndirectChain"/>.</summary>
    public const int DefaultMaxIndirectChain = 16;

    private readonly int _legacyQueueAlign;
    private readonly int _maxIndirectChain = DefaultMaxIndirectChain;

    /// <summary>
    /// VIRTIO_F_EVENT_IDX was negotiated: notifications are suppressed through used_event and avail_event instead of
    /// the flags fields. Default false. Ref: virtio v1.2 §2.7.7, §2.7.10.
    /// </summary>
    public bool EventIdx { get; init; }

    /// <summary>
    /// VIRTIO_F_INDIRECT_DESC was negotiated: a chain of more than one buffer takes one ring descriptor pointing to an
    /// indirect table. Default false. Ref: virtio v1.2 §2.7.5.3.
    /// </summary>
    public bool IndirectDesc { get; init; }

    /// <summary>
    /// VIRTIO_F_IN_ORDER was negotiated: the device uses chains in the order they were made available and may return a
    /// batch of them with one used entry (split) or one used descriptor (packed) naming the batch's last chain; the
    /// others count as used in full. A split queue then also hands out descriptors in ring order. Default false.
    /// Ref: virtio v1.2 §2.7.9, §2.8.9.
    /// </summary>
    public bool InOrder { get; init; }

    /// <summary>
    /// The legacy queue alignment of the transport (4096 on legacy PCI and virtio-mmio v1), or 0 for the modern
    /// layout. Default 0. Ref: virtio v1.2 §2.7.2.
    /// </summary>
    public int LegacyQueueAlign
    {
        get => _legacyQueueAlign;
        init
        {
            if (value != 0 && (value < SplitRing.DescriptorTableAlignment || (value & (value - 1)) != 0))
            {
                throw new ArgumentOutOfRangeException(nameof(LegacyQueueAlign), value, "The legacy queue alignment must be 0 (modern) or a power of two of at least 16.");
            }

            _legacyQueueAlign = value;
        }
    }

    /// <summary>
    /// The longest chain placed in an indirect table; longer chains use direct descriptors. Default 16: a header plus
    /// 15 fragments, at a cost of 256 bytes of DMA memory per ring descriptor for the tables. From 2 to 32768.
    /// </summary>
    public int MaxIndirectChain
    {
        get => _maxIndirectChain;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 2);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, SplitRing.MaxSize);
            _maxIndirectChain = value;
        }
    }
}
