namespace VirtioNet.Net.Offloads;

/// <summary>
/// Where the headers of a UDP-tunnelled frame lie (VXLAN, Geneve: outer Ethernet, IPv4/IPv6 and UDP, a tunnel header,
/// then an inner Ethernet frame carrying TCP or UDP over IPv4/IPv6): the outer_th_offset and inner_nh_offset of the
/// virtio_net_hdr, and the inner headers that segmentation and checksums work on. Every offset counts from the start of
/// the whole frame. Found by <see cref="TryParse"/> (transmit: the caller names the tunnel header length) or
/// <see cref="TryParseAt"/> (receive: the device names the offsets), each checking every length against the frame.
/// Ref: virtio v1.4 §5.1.6.2 (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO), §5.1.6.4.
/// </summary>
public readonly record struct UdpTunnelLayout
{
    private const int UdpHeaderLength = 8;

    /// <summary>The outer headers: a UDP packet whose payload is the tunnel header and the inner frame.</summary>
    public PacketLayout Outer { get; init; }

    /// <summary>The inner headers, offsets from the start of the whole frame.</summary>
    public PacketLayout Inner { get; init; }

    /// <summary>Where the inner Ethernet header starts.</summary>
    public int InnerFrameOffset { get; init; }

    /// <summary>outer_th_offset: the outer UDP header's offset.</summary>
    public int OuterTransportOffset => Outer.TransportOffset;

    /// <summary>inner_nh_offset: the inner IP header's offset.</summary>
    public int InnerNetworkOffset => Inner.NetworkOffset;

    /// <summary>
    /// Finds the headers of a frame whose outer UDP header is followed by <paramref name="tunnelHeaderLength"/> bytes of
    /// tunnel header and an inner Ethernet frame with TCP or UDP over IPv4/IPv6. False when the frame is not so, or when
    /// the inner packet does not end where the outer one does.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, int tunnelHeaderLength, out UdpTunnelLayout layout)
    {
        layout = default;
        if (tunnelHeaderLength < 0 || !PacketLayout.TryParse(frame, out PacketLayout outer) || outer.IsTcp)
        {
            return false;
        }

        return TryParseInner(frame, outer, outer.TransportOffset + UdpHeaderLength + tunnelHeaderLength, out layout);
    }

    /// <summary>
    /// Finds the headers of a frame from the offsets a device gave: the outer UDP header must be at
    /// <paramref name="outerTransportOffset"/> and the inner IP header, right behind an untagged inner Ethernet header,
    /// at <paramref name="innerNetworkOffset"/>. False for any contradiction.
    /// </summary>
    public static bool TryParseAt(ReadOnlySpan<byte> frame, int outerTransportOffset, int innerNetworkOffset, out UdpTunnelLayout layout)
    {
        layout = default;
        if (!PacketLayout.TryParse(frame, out PacketLayout outer) || outer.IsTcp || outer.TransportOffset != outerTransportOffset)
        {
            return false;
        }

        int innerFrame = innerNetworkOffset - EthernetFrame.HeaderLength;
        return innerFrame >= outer.TransportOffset + UdpHeaderLength
            && TryParseInner(frame, outer, innerFrame, out layout)
            && layout.Inner.NetworkOffset == innerNetworkOffset;
    }

    private static bool TryParseInner(ReadOnlySpan<byte> frame, in PacketLayout outer, int innerFrame, out UdpTunnelLayout layout)
    {
        layout = default;
        if (innerFrame > outer.PacketEnd || !PacketLayout.TryParse(frame[innerFrame..outer.PacketEnd], out PacketLayout inner))
        {
            return false;
        }

        inner = inner with
        {
            NetworkOffset = inner.NetworkOffset + innerFrame,
            TransportOffset = inner.TransportOffset + innerFrame,
            PacketEnd = inner.PacketEnd + innerFrame,
        };

        // The inner packet fills the outer UDP payload: padding belongs to the outer frame only.
        if (inner.PacketEnd != outer.PacketEnd)
        {
            return false;
        }

        layout = new UdpTunnelLayout { Outer = outer, Inner = inner, InnerFrameOffset = innerFrame };
        return true;
    }
}
