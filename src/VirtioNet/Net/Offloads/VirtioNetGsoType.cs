namespace VirtioNet.Net.Offloads;

/// <summary>
/// The <c>gso_type</c> byte of the virtio_net_hdr: which segmentation a large packet needs (transmit) or had undone
/// (receive), plus the ECN bit. Ref: virtio v1.2 §5.1.6 (VIRTIO_NET_HDR_GSO_*), v1.3 §5.1.6 (GSO_UDP_L4).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1028:Enum Storage should be Int32", Justification = "gso_type is a u8 on the wire.")]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2217:Do not mark enums with FlagsAttribute", Justification = "Only the ECN and UDP tunnel bits combine with a type, as in the spec.")]
public enum VirtioNetGsoType : byte
{
    /// <summary>VIRTIO_NET_HDR_GSO_NONE (0): not a GSO packet.</summary>
    None = 0,

    /// <summary>VIRTIO_NET_HDR_GSO_TCPV4 (1): TCP segmentation over IPv4 (TSO4).</summary>
    TcpV4 = 1,

    /// <summary>VIRTIO_NET_HDR_GSO_UDP (3): UDP fragmentation offload (UFO), deprecated.</summary>
    Udp = 3,

    /// <summary>VIRTIO_NET_HDR_GSO_TCPV6 (4): TCP segmentation over IPv6 (TSO6).</summary>
    TcpV6 = 4,

    /// <summary>VIRTIO_NET_HDR_GSO_UDP_L4 (5): UDP segmentation (USO), each segment a datagram of its own.</summary>
    UdpL4 = 5,

    /// <summary>
    /// VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4 (0x20), combined with TCPV4, TCPV6 or UDP_L4: the GSO packet is carried by a
    /// UDP tunnel over IPv4 (HOST/GUEST_UDP_TUNNEL_GSO). The spec's text says the bit names the inner network header;
    /// Linux, whose header helpers QEMU 10.1's tap backend relies on, sets and checks it by the outer one, and so does
    /// this driver on transmit (either is accepted on receive). Ref: virtio v1.4 §5.1.6.
    /// </summary>
    UdpTunnelIPv4 = 0x20,

    /// <summary>VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV6 (0x40): as <see cref="UdpTunnelIPv4"/>, a UDP tunnel over IPv6.</summary>
    UdpTunnelIPv6 = 0x40,

    /// <summary>VIRTIO_NET_HDR_GSO_ECN (0x80): the TCP segment carries CWR, which only the first segment may keep.</summary>
    Ecn = 0x80,
}
