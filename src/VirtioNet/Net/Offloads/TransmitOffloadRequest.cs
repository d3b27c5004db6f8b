namespace VirtioNet.Net.Offloads;

/// <summary>
/// What a caller asks of a frame it sends: the TCP/UDP checksum filled in, and a large segment cut into segments of
/// <see cref="SegmentSize"/> payload bytes. The driver does each by the device when negotiated, in software otherwise.
/// </summary>
/// <param name="ComputeChecksum">Fill the TCP or UDP checksum (VIRTIO_NET_F_CSUM, or software).</param>
/// <param name="SegmentSize">
/// The payload per segment (the TCP MSS, or the UDP payload per datagram); 0 sends the frame as one packet. A frame
/// whose payload is not larger than this is sent as one packet too. Segmentation implies the checksum.
/// </param>
public readonly record struct TransmitOffloadRequest(bool ComputeChecksum, int SegmentSize = 0)
{
    /// <summary>Fill the checksum only.</summary>
    public static TransmitOffloadRequest Checksum => new(true);

    /// <summary>Cut a large TCP or UDP segment into segments of <paramref name="segmentSize"/> payload bytes, checksums filled.</summary>
    public static TransmitOffloadRequest Segmentation(int segmentSize) => new(true, segmentSize);

    /// <summary>
    /// For a frame carried by a UDP tunnel (VXLAN, Geneve: outer Ethernet, IP and UDP headers, a tunnel header, then the
    /// inner Ethernet frame): the tunnel header's length between the outer UDP header and the inner Ethernet header (8
    /// for VXLAN, 8 + options for Geneve). 0, the default, is a frame that is not tunnelled. With it, the checksum and
    /// segmentation apply to the inner TCP or UDP packet. Ref: virtio v1.4 §5.1.6.2 (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO).
    /// </summary>
    public int UdpTunnelHeaderLength { get; init; }

    /// <summary>
    /// With <see cref="UdpTunnelHeaderLength"/>: fill the outer UDP checksum too (by the device with
    /// HOST_UDP_TUNNEL_GSO_CSUM, else in software). False, the default, sends it as zero, which UDP over IPv4 allows and
    /// RFC 6935 allows for tunnels over IPv6.
    /// </summary>
    public bool OuterUdpChecksum { get; init; }

    /// <summary>True for a UDP-tunnelled frame.</summary>
    public bool IsUdpTunnel => UdpTunnelHeaderLength > 0;

    /// <summary>
    /// Cut the inner TCP or UDP segment of a UDP-tunnelled frame into segments of <paramref name="segmentSize"/> payload
    /// bytes, with a tunnel header of <paramref name="tunnelHeaderLength"/> bytes (8 for VXLAN), inner checksums filled,
    /// the outer UDP checksum filled when <paramref name="outerUdpChecksum"/>, zero otherwise.
    /// </summary>
    public static TransmitOffloadRequest UdpTunnelSegmentation(int segmentSize, int tunnelHeaderLength, bool outerUdpChecksum = false) =>
        new(true, segmentSize) { UdpTunnelHeaderLength = tunnelHeaderLength, OuterUdpChecksum = outerUdpChecksum };
}
