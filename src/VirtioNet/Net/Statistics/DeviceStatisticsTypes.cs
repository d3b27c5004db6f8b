namespace VirtioNet.Net.Statistics;

/// <summary>
/// The statistics types of VIRTIO_NET_F_DEVICE_STATS, as the bits of <c>supported_stats_types</c> (the answer of
/// VIRTIO_NET_CTRL_STATS_QUERY) and <c>types_bitmap</c> (the request of VIRTIO_NET_CTRL_STATS_GET). A reply block of
/// type <c>n</c> (VIRTIO_NET_STATS_TYPE_REPLY_*) answers bit <c>1 &lt;&lt; n</c>. Ref: virtio v1.3 §5.1.6.5.11 (Device Statistics).
/// </summary>
[Flags]
public enum DeviceStatisticsTypes : ulong
{
    /// <summary>No type.</summary>
    None = 0,

    /// <summary>VIRTIO_NET_STATS_TYPE_RX_BASIC (1 &lt;&lt; 0): receive queue packets, bytes, drops (no feature needed).</summary>
    RxBasic = 1UL << 0,

    /// <summary>VIRTIO_NET_STATS_TYPE_RX_CSUM (1 &lt;&lt; 1): receive checksum counters (needs VIRTIO_NET_F_GUEST_CSUM).</summary>
    RxCsum = 1UL << 1,

    /// <summary>VIRTIO_NET_STATS_TYPE_RX_GSO (1 &lt;&lt; 2): receive GSO counters (needs VIRTIO_NET_F_GUEST_TSO4 or TSO6).</summary>
    RxGso = 1UL << 2,

    /// <summary>VIRTIO_NET_STATS_TYPE_RX_SPEED (1 &lt;&lt; 3): receive drops over the speed allowance.</summary>
    RxSpeed = 1UL << 3,

    /// <summary>VIRTIO_NET_STATS_TYPE_TX_BASIC (1 &lt;&lt; 16): transmit queue packets, bytes, drops (no feature needed).</summary>
    TxBasic = 1UL << 16,

    /// <summary>VIRTIO_NET_STATS_TYPE_TX_CSUM (1 &lt;&lt; 17): transmit checksum counters (needs VIRTIO_NET_F_CSUM).</summary>
    TxCsum = 1UL << 17,

    /// <summary>VIRTIO_NET_STATS_TYPE_TX_GSO (1 &lt;&lt; 18): transmit GSO counters (needs VIRTIO_NET_F_HOST_TSO4, TSO6 or USO).</summary>
    TxGso = 1UL << 18,

    /// <summary>VIRTIO_NET_STATS_TYPE_TX_SPEED (1 &lt;&lt; 19): transmit drops over the speed allowance.</summary>
    TxSpeed = 1UL << 19,

    /// <summary>VIRTIO_NET_STATS_TYPE_CVQ (1 &lt;&lt; 32): control queue commands received and completed.</summary>
    Cvq = 1UL << 32,
}
