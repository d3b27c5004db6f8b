namespace VirtioNet.Net.Offloads;

/// <summary>
/// The <c>gso_type</c> byte of the virtio_net_hdr: which segmentation a large packet needs (transmit) or had undone
/// (receive), plus the ECN bit. Ref: virtio v1.2 §5.1.6 (VIRTIO_NET_HDR_GSO_*), v1.3 §5.1.6 (GSO_UDP_L4).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1028:Enum Storage should be Int32", Justification = "gso_type is a u8 on the wire.")]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2217:Do not mark enums with FlagsAttribute", Justification = "Only the ECN bit combines with a type, as in the spec.")]
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

    /// <summary>VIRTIO_NET_HDR_GSO_ECN (0x80): the TCP segment carries CWR, which only the first segment may keep.</summary>
    Ecn = 0x80,
}
