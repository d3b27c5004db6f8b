namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// The VIRTIO_NET_HASH_TYPE_* bits: which packet fields a device hashes (in <c>supported_hash_types</c>, and in the
/// <c>hash_types</c> of an RSS or hash configuration). Ref: virtio v1.2 §5.1.6.5.7.1 (Supported/enabled hash types).
/// </summary>
[Flags]
public enum RssHashTypes : uint
{
    /// <summary>No hashing.</summary>
    None = 0,

    /// <summary>VIRTIO_NET_HASH_TYPE_IPv4 (bit 0): source and destination IPv4 addresses.</summary>
    Ipv4 = 1 << 0,

    /// <summary>VIRTIO_NET_HASH_TYPE_TCPv4 (bit 1): IPv4 addresses and TCP ports.</summary>
    TcpIpv4 = 1 << 1,

    /// <summary>VIRTIO_NET_HASH_TYPE_UDPv4 (bit 2): IPv4 addresses and UDP ports.</summary>
    UdpIpv4 = 1 << 2,

    /// <summary>VIRTIO_NET_HASH_TYPE_IPv6 (bit 3): source and destination IPv6 addresses.</summary>
    Ipv6 = 1 << 3,

    /// <summary>VIRTIO_NET_HASH_TYPE_TCPv6 (bit 4): IPv6 addresses and TCP ports.</summary>
    TcpIpv6 = 1 << 4,

    /// <summary>VIRTIO_NET_HASH_TYPE_UDPv6 (bit 5): IPv6 addresses and UDP ports.</summary>
    UdpIpv6 = 1 << 5,

    /// <summary>VIRTIO_NET_HASH_TYPE_IP_EX (bit 6): IPv6 addresses taken from extension headers where present.</summary>
    IpEx = 1 << 6,

    /// <summary>VIRTIO_NET_HASH_TYPE_TCP_EX (bit 7): as TCPv6, with addresses from extension headers.</summary>
    TcpEx = 1 << 7,

    /// <summary>VIRTIO_NET_HASH_TYPE_UDP_EX (bit 8): as UDPv6, with addresses from extension headers.</summary>
    UdpEx = 1 << 8,
}
