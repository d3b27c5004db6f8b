using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// The transmit offload decisions: which of checksum and segmentation the device does (by the negotiated features) and
/// which the driver does in software, and the frame changes each needs. Pure functions over spans; allocates nothing.
/// Ref: virtio v1.2 §5.1.6.2 (Packet Transmission), §5.1.3.1 (feature dependencies).
/// </summary>
public static class TransmitOffload
{
    /// <summary>The TCP flags byte's offset in the TCP header.</summary>
    internal const int TcpFlagsOffset = 13;

    /// <summary>TCP CWR (RFC 3168): set on the segment after a congestion signal; kept on the first segment only.</summary>
    internal const byte TcpFlagCwr = 0x80;

    /// <summary>The UDP checksum's offset in the UDP header (RFC 768).</summary>
    private const int UdpChecksumOffset = 6;

    /// <summary>The largest gso_size the 16-bit field holds.</summary>
    private const int MaxGsoSize = ushort.MaxValue;

    /// <summary>
    /// Decides how to send the frame whose headers are <paramref name="layout"/>, given what the caller asks and what
    /// was negotiated: the device's checksum with VIRTIO_NET_F_CSUM (else software), the device's segmentation with
    /// HOST_TSO4 (TCP/IPv4), HOST_TSO6 (TCP/IPv6), HOST_ECN (a CWR segment) or HOST_USO (UDP), else software segmentation.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The segment size is negative or above 65535.</exception>
    public static TransmitOffloadDecision Decide(ReadOnlySpan<byte> frame, in PacketLayout layout, TransmitOffloadRequest request, ulong negotiated)
    {
        if (request.SegmentSize is < 0 or > MaxGsoSize)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.SegmentSize, "The segment size must be 0 (none) to 65535.");
        }

        bool deviceChecksum = (negotiated & VirtioNetFeatures.Csum) != 0;
        bool segment = request.SegmentSize > 0 && layout.PayloadLength > request.SegmentSize;
        if (!segment && !request.ComputeChecksum)
        {
            return default;
        }

        var checksumOnly = new TransmitOffloadDecision
        {
            Flags = deviceChecksum ? VirtioNetHeader.FlagNeedsCsum : (byte)0,
            CsumStart = deviceChecksum ? layout.TransportOffset : 0,
            CsumOffset = deviceChecksum ? layout.ChecksumFieldOffset : 0,
            ChecksumInSoftware = !deviceChecksum,
        };
        if (!segment)
        {
            return checksumOnly;
        }

        VirtioNetGsoType type = DeviceGsoType(frame, layout, negotiated);
        if (type == VirtioNetGsoType.None)
        {
            return checksumOnly with { SegmentInSoftware = true, SoftwareSegmentSize = request.SegmentSize };
        }

        // §5.1.6.2: a GSO packet always asks for the checksum (the device fills it per segment).
        return new TransmitOffloadDecision
        {
            Flags = VirtioNetHeader.FlagNeedsCsum,
            GsoType = type,
            GsoSize = request.SegmentSize,
            HdrLen = layout.HeaderLength,
            CsumStart = layout.TransportOffset,
            CsumOffset = layout.ChecksumFieldOffset,
        };
    }

    /// <summary>
    /// Decides how to send a UDP-tunnelled frame (<paramref name="tunnel"/>), whose inner TCP or UDP packet the request's
    /// checksum and segmentation apply to. With VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (and the HOST_TSO4/TSO6/USO, HOST_ECN
    /// the inner packet needs; and HOST_UDP_TUNNEL_GSO_CSUM when the outer UDP checksum is asked for) the device gets one
    /// GSO packet: gso_type the inner type with GSO_UDP_TUNNEL_IPV4 or _IPV6 by the outer IP version (as Linux does; see
    /// the note in the code), csum_start at the
    /// inner transport header, outer_th_offset and inner_nh_offset set, UDP_TUNNEL_CSUM for the outer checksum. Otherwise
    /// the driver segments (<see cref="SoftwareSegmentation.WriteUdpTunnelSegment"/>) and each packet has one checksum the
    /// device may complete with VIRTIO_NET_F_CSUM: the inner one, or the outer UDP one when asked for (the inner one is
    /// then computed here, as the outer sum covers it). Ref: virtio v1.4 §5.1.6.2 and its driver requirements.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The segment size is negative or above 65535.</exception>
    public static TransmitOffloadDecision DecideUdpTunnel(ReadOnlySpan<byte> frame, in UdpTunnelLayout tunnel, TransmitOffloadRequest request, Core.VirtioFeatureSet negotiated)
    {
        if (request.SegmentSize is < 0 or > MaxGsoSize)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.SegmentSize, "The segment size must be 0 (none) to 65535.");
        }

        PacketLayout inner = tunnel.Inner;
        bool segment = request.SegmentSize > 0 && inner.PayloadLength > request.SegmentSize;
        if (!segment && !request.ComputeChecksum)
        {
            return default;
        }

        if (segment)
        {
            VirtioNetGsoType type = DeviceGsoType(frame, inner, negotiated.Low);
            bool tunnelGso = negotiated.ContainsAny(VirtioNetFeatures.HostUdpTunnelGso)
                && (!request.OuterUdpChecksum || negotiated.ContainsAny(VirtioNetFeatures.HostUdpTunnelGsoCsum));
            if (type != VirtioNetGsoType.None && tunnelGso)
            {
                return new TransmitOffloadDecision
                {
                    Flags = (byte)(VirtioNetHeader.FlagNeedsCsum | (request.OuterUdpChecksum ? VirtioNetHeader.FlagUdpTunnelCsum : 0)),
                    // The tunnel bit by the outer IP version, as Linux's virtio_net_hdr_tnl_from_skb sets it and its
                    // _to_skb checks it (outer_th_offset at least 14 + the IP header the bit names). The spec's wording
                    // names the inner header; the readings differ only when the two IP versions do, and then a
                    // Linux-based device (QEMU 10.1 with tap) refuses the inner one.
                    GsoType = type | (tunnel.Outer.IsIPv6 ? VirtioNetGsoType.UdpTunnelIPv6 : VirtioNetGsoType.UdpTunnelIPv4),
                    GsoSize = request.SegmentSize,
                    HdrLen = inner.HeaderLength,
                    CsumStart = inner.TransportOffset,
                    CsumOffset = inner.ChecksumFieldOffset,
                    OuterThOffset = tunnel.OuterTransportOffset,
                    InnerNhOffset = tunnel.InnerNetworkOffset,
                };
            }
        }

        bool deviceChecksum = (negotiated.Low & VirtioNetFeatures.Csum) != 0;
        int start = request.OuterUdpChecksum ? tunnel.OuterTransportOffset : inner.TransportOffset;
        int offset = request.OuterUdpChecksum ? UdpChecksumOffset : inner.ChecksumFieldOffset;
        return new TransmitOffloadDecision
        {
            Flags = deviceChecksum ? VirtioNetHeader.FlagNeedsCsum : (byte)0,
            CsumStart = deviceChecksum ? start : 0,
            CsumOffset = deviceChecksum ? offset : 0,
            ChecksumInSoftware = !deviceChecksum,
            SegmentInSoftware = segment,
            SoftwareSegmentSize = segment ? request.SegmentSize : 0,
        };
    }

    /// <summary>
    /// Writes the checksums and outer UDP fields of a UDP-tunnelled packet sent whole (a device GSO packet, or one that
    /// needs no segmentation) as <paramref name="decision"/> says: the outer UDP length from the outer IP header; for a
    /// tunnel GSO packet the inner pseudo-header sum and, with UDP_TUNNEL_CSUM, the outer one (§5.1.6.2), else the inner
    /// checksum (partial when the device completes it) and the outer UDP checksum, zero unless
    /// <paramref name="outerUdpChecksum"/>.
    /// </summary>
    public static void ApplyUdpTunnel(Span<byte> frame, in UdpTunnelLayout tunnel, in TransmitOffloadDecision decision, bool outerUdpChecksum)
    {
        PacketLayout inner = tunnel.Inner;
        if (decision.IsUdpTunnelGso)
        {
            WritePseudoHeader(frame, inner);
            FinishOuterUdp(frame, tunnel.Outer, outerUdpChecksum, outerPartial: true);
            return;
        }

        if (decision.NeedsChecksum && decision.CsumStart == inner.TransportOffset)
        {
            WritePseudoHeader(frame, inner);
        }
        else
        {
            WriteFullChecksum(frame, inner);
        }

        FinishOuterUdp(frame, tunnel.Outer, outerUdpChecksum, outerPartial: decision.NeedsChecksum && decision.CsumStart == tunnel.OuterTransportOffset);
    }

    /// <summary>
    /// Sets the outer UDP length to what the outer IP header says and its checksum: zero without
    /// <paramref name="outerUdpChecksum"/> (§5.1.6.2: a tunnel whose outer checksum is not offloaded carries zero), else
    /// the pseudo-header sum for the device to complete (<paramref name="outerPartial"/>) or the full checksum.
    /// </summary>
    internal static void FinishOuterUdp(Span<byte> packet, in PacketLayout outer, bool outerUdpChecksum, bool outerPartial)
    {
        BinaryPrimitives.WriteUInt16BigEndian(packet[(outer.TransportOffset + 4)..], (ushort)outer.TransportLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(outer.TransportOffset + UdpChecksumOffset)..], 0);
        if (!outerUdpChecksum)
        {
            return;
        }

        if (outerPartial)
        {
            WritePseudoHeader(packet, outer);
        }
        else
        {
            WriteFullChecksum(packet, outer);
        }
    }

    // The pseudo-header sum over the whole transport length in the checksum field, for the device to complete.
    private static void WritePseudoHeader(Span<byte> frame, in PacketLayout layout)
    {
        ushort pseudo = InternetChecksum.PseudoHeaderChecksum(layout.SourceAddress(frame), layout.DestinationAddress(frame), layout.Protocol, layout.TransportLength);
        BinaryPrimitives.WriteUInt16BigEndian(frame[(layout.TransportOffset + layout.ChecksumFieldOffset)..], pseudo);
    }

    /// <summary>
    /// Writes the checksum field as <paramref name="decision"/> says: the pseudo-header sum over the whole transport
    /// length when the device completes it (§5.1.6.2; for GSO too, as Linux does, since the device adjusts it per
    /// segment), the full checksum when the driver does it. Nothing for a frame sent as is.
    /// </summary>
    public static void ApplyChecksum(Span<byte> frame, in PacketLayout layout, in TransmitOffloadDecision decision)
    {
        if (decision.NeedsChecksum)
        {
            ushort pseudo = InternetChecksum.PseudoHeaderChecksum(layout.SourceAddress(frame), layout.DestinationAddress(frame), layout.Protocol, layout.TransportLength);
            BinaryPrimitives.WriteUInt16BigEndian(frame[(layout.TransportOffset + layout.ChecksumFieldOffset)..], pseudo);
        }
        else if (decision.ChecksumInSoftware)
        {
            WriteFullChecksum(frame, layout);
        }
    }

    /// <summary>Computes and stores the complete TCP or UDP checksum of the packet <paramref name="layout"/> describes.</summary>
    public static void WriteFullChecksum(Span<byte> frame, in PacketLayout layout)
    {
        Span<byte> field = frame[(layout.TransportOffset + layout.ChecksumFieldOffset)..];
        field[0] = 0;
        field[1] = 0;
        ushort checksum = InternetChecksum.ComputeTransport(
            layout.SourceAddress(frame), layout.DestinationAddress(frame), layout.Protocol, frame[layout.TransportOffset..layout.PacketEnd]);
        BinaryPrimitives.WriteUInt16BigEndian(field, checksum);
    }

    // The gso_type the device can do for this packet, or None when it lacks the feature (software segmentation then).
    private static VirtioNetGsoType DeviceGsoType(ReadOnlySpan<byte> frame, in PacketLayout layout, ulong negotiated)
    {
        // §5.1.3.1: HOST_TSO4/6, HOST_ECN and HOST_USO need VIRTIO_NET_F_CSUM; without it nothing is segmented by the device.
        if ((negotiated & VirtioNetFeatures.Csum) == 0)
        {
            return VirtioNetGsoType.None;
        }

        if (!layout.IsTcp)
        {
            return (negotiated & VirtioNetFeatures.HostUso) != 0 ? VirtioNetGsoType.UdpL4 : VirtioNetGsoType.None;
        }

        ulong needed = layout.IsIPv6 ? VirtioNetFeatures.HostTso6 : VirtioNetFeatures.HostTso4;
        var type = layout.IsIPv6 ? VirtioNetGsoType.TcpV6 : VirtioNetGsoType.TcpV4;
        if ((frame[layout.TransportOffset + TcpFlagsOffset] & TcpFlagCwr) != 0)
        {
            // A CWR segment must keep CWR on its first piece only: the device must know ECN (HOST_ECN).
            needed |= VirtioNetFeatures.HostEcn;
            type |= VirtioNetGsoType.Ecn;
        }

        return (negotiated & needed) == needed ? type : VirtioNetGsoType.None;
    }
}
