namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// The <c>hash_report</c> field of a received packet's header (VIRTIO_NET_HASH_REPORT_*): which fields
/// <c>hash_value</c> was computed over. Ref: virtio v1.2 §5.1.6.4.3.4 (Hash calculation for incoming packets).
/// </summary>
public enum HashReportType : ushort
{
    /// <summary>VIRTIO_NET_HASH_REPORT_NONE (0): no hash was computed.</summary>
    None = 0,

    /// <summary>VIRTIO_NET_HASH_REPORT_IPv4 (1).</summary>
    Ipv4 = 1,

    /// <summary>VIRTIO_NET_HASH_REPORT_TCPv4 (2).</summary>
    TcpIpv4 = 2,

    /// <summary>VIRTIO_NET_HASH_REPORT_UDPv4 (3).</summary>
    UdpIpv4 = 3,

    /// <summary>VIRTIO_NET_HASH_REPORT_IPv6 (4).</summary>
    Ipv6 = 4,

    /// <summary>VIRTIO_NET_HASH_REPORT_TCPv6 (5).</summary>
    TcpIpv6 = 5,

    /// <summary>VIRTIO_NET_HASH_REPORT_UDPv6 (6).</summary>
    UdpIpv6 = 6,

    /// <summary>VIRTIO_NET_HASH_REPORT_IPv6_EX (7).</summary>
    Ipv6Ex = 7,

    /// <summary>VIRTIO_NET_HASH_REPORT_TCPv6_EX (8).</summary>
    TcpIpv6Ex = 8,

    /// <summary>VIRTIO_NET_HASH_REPORT_UDPv6_EX (9).</summary>
    UdpIpv6Ex = 9,
}
