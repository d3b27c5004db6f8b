using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// Checks what the device wrote in a received packet's virtio_net_hdr against the negotiated features and the frame
/// itself, and finishes a partial checksum for the caller. Nothing the device says is taken on trust: flags or a
/// gso_type it may not use, a GSO packet whose headers do not match its type, and checksum positions outside the frame
/// make the packet a counted drop. With VIRTIO_NET_F_RSC_EXT a coalesced TCP frame may carry VIRTIO_NET_HDR_F_RSC_INFO:
/// csum_start and csum_offset then hold the number of coalesced segments and of duplicated ACKs, never a checksum
/// position. Ref: virtio v1.2 §5.1.6.4, §5.1.6.4.1 (device requirements), §5.1.6.4.2.
/// </summary>
public static class ReceiveOffload
{
    private const byte KnownFlags = VirtioNetHeader.FlagNeedsCsum | VirtioNetHeader.FlagDataValid;

    // The TCP checksum's offset in the TCP header (RFC 9293 §3.1).
    private const int TcpChecksumOffset = 16;

    /// <summary>
    /// Checks the header <paramref name="header"/> of the received <paramref name="frame"/>, completes a partial
    /// checksum in place, and verifies a DATA_VALID one when <paramref name="verifyDataValid"/>. Returns false when the
    /// header is inconsistent (the packet must be dropped and counted), true otherwise with what it said in <paramref name="info"/>.
    /// </summary>
    /// <param name="header">The virtio_net_hdr, at least <see cref="VirtioNetHeader.LegacyLength"/> bytes.</param>
    /// <param name="frame">The frame, Ethernet header onwards.</param>
    /// <param name="negotiated">The negotiated features (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_UFO, GUEST_USO4/6, RSC_EXT).</param>
    /// <param name="verifyDataValid">Recompute the checksum of DATA_VALID packets rather than take the device's word.</param>
    /// <param name="info">The checksum state and GSO information.</param>
    public static bool TryProcess(ReadOnlySpan<byte> header, Span<byte> frame, ulong negotiated, bool verifyDataValid, out ReceivedFrameInfo info)
        => TryProcess(header, frame, Core.VirtioFeatureSet.FromUInt64(negotiated), verifyDataValid, out info);

    /// <summary>
    /// As <see cref="TryProcess(ReadOnlySpan{byte}, Span{byte}, ulong, bool, out ReceivedFrameInfo)"/> over all 128
    /// negotiated bits: with VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO a GSO packet may carry GSO_UDP_TUNNEL_IPV4/IPV6, and is
    /// then checked against its outer_th_offset and inner_nh_offset (a UDP header there, an inner IP header of the
    /// version the bit names, csum_start at the inner transport header); with GUEST_UDP_TUNNEL_GSO_CSUM and
    /// UDP_TUNNEL_CSUM the outer UDP checksum is completed too. Ref: virtio v1.4 §5.1.6.4, §5.1.6.4.1.
    /// </summary>
    public static bool TryProcess(ReadOnlySpan<byte> header, Span<byte> frame, Core.VirtioFeatureSet negotiatedSet, bool verifyDataValid, out ReceivedFrameInfo info)
    {
        if (!TryValidate(header, frame, frame.Length, negotiatedSet, out info, out PacketLayout layout, out bool parsed))
        {
            return false;
        }

        if (info.Checksum == ReceivedChecksumState.Partial)
        {
            // The sum runs to the end of the IP packet, not into Ethernet padding a device might have left after it.
            int end = parsed ? layout.PacketEnd : frame.Length;
            InternetChecksum.CompletePartial(frame[..end], info.ChecksumStart, info.ChecksumOffset);
            if (IsOuterChecksumPartial(header, info))
            {
                // A UDP-tunnel frame with UDP_TUNNEL_CSUM: the outer UDP checksum field holds the pseudo-header sum
                // (v1.4 §5.1.6.4, point 5), completed after the inner one it covers.
                InternetChecksum.CompletePartial(frame[..end], info.OuterTransportOffset, 6);
            }

            info = info with { Checksum = ReceivedChecksumState.Completed, ChecksumStart = 0, ChecksumOffset = 0 };
        }
        else if (info.Checksum == ReceivedChecksumState.DeviceValidated && verifyDataValid && parsed)
        {
            info = info with { Checksum = IsTransportChecksumValid(frame, layout) ? ReceivedChecksumState.Verified : ReceivedChecksumState.Invalid };
        }

        return true;
    }

    /// <summary>
    /// The checks of <see cref="TryProcess(ReadOnlySpan{byte}, Span{byte}, Core.VirtioFeatureSet, bool, out ReceivedFrameInfo)"/> without touching the frame's bytes: the one validator of the copying and
    /// the burst receive paths. <paramref name="head"/> is the contiguous start of a frame of <paramref name="frameLength"/>
    /// bytes (the whole frame, or a mergeable packet's first buffer, which must then hold every header). Returns false
    /// for a header that lies; otherwise <paramref name="info"/> says <see cref="ReceivedChecksumState.Partial"/> (with
    /// where, checked to lie inside the IP packet), <see cref="ReceivedChecksumState.DeviceValidated"/> or
    /// <see cref="ReceivedChecksumState.None"/>, and the caller completes or verifies as it was asked.
    /// </summary>
    internal static bool TryValidate(
        ReadOnlySpan<byte> header, ReadOnlySpan<byte> head, int frameLength, Core.VirtioFeatureSet negotiatedSet, out ReceivedFrameInfo info, out PacketLayout layout, out bool parsed)
    {
        info = default;
        layout = default;
        parsed = false;
        ulong negotiated = negotiatedSet.Low;
        bool tunnelNegotiated = negotiatedSet.ContainsAny(VirtioNetFeatures.GuestUdpTunnelGso);
        bool tunnelCsumNegotiated = negotiatedSet.ContainsAny(VirtioNetFeatures.GuestUdpTunnelGsoCsum);
        if (header.Length < VirtioNetHeader.LegacyLength)
        {
            return false;
        }

        // §5.1.6.4.2: the driver ignores flag bits it does not recognise (later versions of the spec add some, such as
        // the UDP tunnel checksum bit); the ones it knows are checked below.
        var gso = (VirtioNetGsoType)header[VirtioNetHeader.GsoTypeOffset];
        const VirtioNetGsoType tunnelBits = VirtioNetGsoType.UdpTunnelIPv4 | VirtioNetGsoType.UdpTunnelIPv6;
        VirtioNetGsoType tunnel = gso & tunnelBits;

        // UDP_TUNNEL_CSUM matters on a tunnel GSO frame only, where it says the outer UDP checksum field holds a
        // pseudo-header sum; elsewhere (with DATA_VALID: both levels validated, v1.4 §5.1.6.4) it changes nothing here.
        bool outerCsum = tunnel != 0 && (header[VirtioNetHeader.FlagsOffset] & VirtioNetHeader.FlagUdpTunnelCsum) != 0;
        byte flags = (byte)(header[VirtioNetHeader.FlagsOffset] & (KnownFlags | VirtioNetHeader.FlagRscInfo));
        if (flags == 0 && gso == VirtioNetGsoType.None)
        {
            // The common case without receive offloads: nothing to check.
            return true;
        }

        // §5.1.6.4.1: without GUEST_CSUM the device sets flags to zero, and without RSC_EXT it never sets RSC_INFO.
        byte known = (negotiated & VirtioNetFeatures.RscExt) != 0 ? (byte)(KnownFlags | VirtioNetHeader.FlagRscInfo) : KnownFlags;
        if ((flags & ~known) != 0 || (negotiated & VirtioNetFeatures.GuestCsum) == 0)
        {
            return false;
        }

        // v1.4 §5.1.6.4.1: the tunnel bits only with GUEST_UDP_TUNNEL_GSO, never both, only on a GSO packet, which has
        // NEEDS_CSUM (so not DATA_VALID; csum_start at the inner transport header); UDP_TUNNEL_CSUM on it only with
        // GUEST_UDP_TUNNEL_GSO_CSUM. RSC_INFO describes plain TCP coalescing.
        if (tunnel != 0 && (!tunnelNegotiated || tunnel == tunnelBits || (gso & ~(tunnelBits | VirtioNetGsoType.Ecn)) == VirtioNetGsoType.None
            || flags != VirtioNetHeader.FlagNeedsCsum || (outerCsum && !tunnelCsumNegotiated) || header.Length < VirtioNetHeader.UdpTunnelLength))
        {
            return false;
        }

        if (tunnel != 0)
        {
            // The tunnel's headers must all be in the contiguous start (the whole frame on the copying path).
            parsed = head.Length >= frameLength && TryValidateUdpTunnel(header, head[..frameLength], gso, negotiated, out info, out layout);
            return parsed;
        }

        // §5.1.6.4.1: RSC_INFO describes a coalesced TCP frame, so it comes with gso_type TCPV4 or TCPV6 (checked below
        // against the frame and the negotiated GUEST_TSO4/6).
        bool rscInfo = (flags & VirtioNetHeader.FlagRscInfo) != 0;
        if (rscInfo && (gso & ~VirtioNetGsoType.Ecn) is not (VirtioNetGsoType.TcpV4 or VirtioNetGsoType.TcpV6))
        {
            return false;
        }

        parsed = PacketLayout.TryParse(head, frameLength, out layout);
        int gsoSize = 0;
        if (gso != VirtioNetGsoType.None)
        {
            // A GSO frame needs its MSS in gso_size (§5.1.6.4.1). A coalesced frame with RSC_INFO is let through without
            // one, its segment count standing in: QEMU (7.2, 10.0) leaves gso_size 0 on the frames it coalesces.
            gsoSize = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.GsoSizeOffset..]);
            if ((gsoSize == 0 && !rscInfo) || !parsed || !GsoTypeFits(gso, layout, negotiated))
            {
                return false;
            }
        }

        int segments = 0;
        int duplicateAcks = 0;
        if (rscInfo)
        {
            // csum_start: the TCP segments coalesced; csum_offset: the duplicated ACKs (§5.1.6.4). At least one segment,
            // and no more than the payload has bytes (every coalesced segment brought data, bar a first pure ACK).
            segments = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.CsumStartOffset..]);
            duplicateAcks = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.CsumOffsetOffset..]);
            if (segments == 0 || segments > layout.PayloadLength + 1)
            {
                return false;
            }
        }

        ReceivedChecksumState state;
        if ((flags & VirtioNetHeader.FlagNeedsCsum) != 0)
        {
            // §5.1.6.4.2: with RSC_INFO the driver must not use csum_start/csum_offset; the partial checksum is then the
            // TCP checksum, whose place the frame itself gives.
            int start = rscInfo ? layout.TransportOffset : BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.CsumStartOffset..]);
            int offset = rscInfo ? TcpChecksumOffset : BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.CsumOffsetOffset..]);

            // The sum runs to the end of the IP packet, not into Ethernet padding a device might have left after it.
            int end = parsed ? layout.PacketEnd : frameLength;
            if (start < EthernetFrame.HeaderLength || start + offset + 2 > end)
            {
                return false;
            }

            info = new ReceivedFrameInfo(ReceivedChecksumState.Partial, gso, gsoSize)
            {
                CoalescedSegments = segments,
                DuplicateAcks = duplicateAcks,
                ChecksumStart = start,
                ChecksumOffset = offset,
            };
            return true;
        }
        else if ((flags & VirtioNetHeader.FlagDataValid) != 0)
        {
            state = ReceivedChecksumState.DeviceValidated;
        }
        else
        {
            // A GSO packet the device neither validated nor left partial: its checksum is in the frame, unchecked, and
            // §5.1.6.4.2 says not to rely on it. QEMU's coalesced (RSC_INFO) frames come so, and their checksums are wrong.
            state = ReceivedChecksumState.None;
        }

        info = new ReceivedFrameInfo(state, gso, gsoSize) { CoalescedSegments = segments, DuplicateAcks = duplicateAcks };
        return true;
    }

    // A UDP-tunnel GSO packet (flags and bits checked by the caller): the offsets must name the frame's own outer UDP
    // and inner IP headers, the inner packet must be of the type gso_type says, and csum_start/csum_offset must be its
    // checksum. Reported Partial at the inner checksum, with the outer offsets; TryProcess completes the inner sum, then
    // the outer one when UDP_TUNNEL_CSUM says it is partial (IsOuterChecksumPartial).
    private static bool TryValidateUdpTunnel(ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame, VirtioNetGsoType gso, ulong negotiated, out ReceivedFrameInfo info, out PacketLayout layout)
    {
        info = default;
        layout = default;
        int gsoSize = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.GsoSizeOffset..]);
        int outerTh = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.OuterThOffsetOffset..]);
        int innerNh = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.InnerNhOffsetOffset..]);
        if (gsoSize == 0 || !UdpTunnelLayout.TryParseAt(frame, outerTh, innerNh, out UdpTunnelLayout tunnel))
        {
            return false;
        }

        // The spec's text ties GSO_UDP_TUNNEL_IPV4/IPV6 to the inner network header, Linux's virtio_net_hdr_tnl_to_skb
        // and _from_skb (the implementation QEMU 10.1's tap backend hands the header to) to the outer one; they differ
        // only when the two IP versions do, and a bit naming neither is a lie.
        PacketLayout inner = tunnel.Inner;
        bool ipv6Bit = (gso & VirtioNetGsoType.UdpTunnelIPv6) != 0;
        VirtioNetGsoType innerType = gso & ~(VirtioNetGsoType.UdpTunnelIPv4 | VirtioNetGsoType.UdpTunnelIPv6);
        if ((inner.IsIPv6 != ipv6Bit && tunnel.Outer.IsIPv6 != ipv6Bit) || (innerType & ~VirtioNetGsoType.Ecn) is VirtioNetGsoType.Udp
            || !GsoTypeFits(innerType, inner, negotiated))
        {
            return false;
        }

        int start = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.CsumStartOffset..]);
        int offset = BinaryPrimitives.ReadUInt16LittleEndian(header[VirtioNetHeader.CsumOffsetOffset..]);
        if (start != inner.TransportOffset || offset != inner.ChecksumFieldOffset)
        {
            return false;
        }

        layout = tunnel.Outer;
        info = new ReceivedFrameInfo(ReceivedChecksumState.Partial, gso, gsoSize)
        {
            ChecksumStart = start,
            ChecksumOffset = offset,
            OuterTransportOffset = tunnel.OuterTransportOffset,
            InnerNetworkOffset = tunnel.InnerNetworkOffset,
        };
        return true;
    }

    /// <summary>Whether a frame <see cref="TryValidate"/> accepted is a UDP-tunnel frame whose outer UDP checksum is partial too (UDP_TUNNEL_CSUM).</summary>
    internal static bool IsOuterChecksumPartial(ReadOnlySpan<byte> header, in ReceivedFrameInfo info) =>
        info.OuterTransportOffset != 0 && (header[VirtioNetHeader.FlagsOffset] & VirtioNetHeader.FlagUdpTunnelCsum) != 0;

    /// <summary>True when the TCP or UDP checksum of the packet <paramref name="layout"/> describes is right (a zero UDP/IPv4 checksum means none).</summary>
    public static bool IsTransportChecksumValid(ReadOnlySpan<byte> frame, in PacketLayout layout)
    {
        if (!layout.IsTcp && !layout.IsIPv6 && BinaryPrimitives.ReadUInt16BigEndian(frame[(layout.TransportOffset + 6)..]) == 0)
        {
            return true;
        }

        uint pseudo = InternetChecksum.PseudoHeaderSum(layout.SourceAddress(frame), layout.DestinationAddress(frame), layout.Protocol, layout.TransportLength);
        return InternetChecksum.Add(frame[layout.TransportOffset..layout.PacketEnd], pseudo) == 0xFFFF;
    }

    // §5.1.6.4.1: the device uses a gso_type only when the matching GUEST_* feature was negotiated, and the packet must be of that kind.
    private static bool GsoTypeFits(VirtioNetGsoType gso, in PacketLayout layout, ulong negotiated)
    {
        bool ecn = (gso & VirtioNetGsoType.Ecn) != 0;
        if (ecn && (negotiated & VirtioNetFeatures.GuestEcn) == 0)
        {
            return false;
        }

        return (gso & ~VirtioNetGsoType.Ecn) switch
        {
            VirtioNetGsoType.TcpV4 => layout.IsTcp && !layout.IsIPv6 && (negotiated & VirtioNetFeatures.GuestTso4) != 0,
            VirtioNetGsoType.TcpV6 => layout.IsTcp && layout.IsIPv6 && (negotiated & VirtioNetFeatures.GuestTso6) != 0,
            VirtioNetGsoType.Udp => !ecn && !layout.IsTcp && (negotiated & VirtioNetFeatures.GuestUfo) != 0,
            VirtioNetGsoType.UdpL4 => !ecn && !layout.IsTcp &&
                (negotiated & (layout.IsIPv6 ? VirtioNetFeatures.GuestUso6 : VirtioNetFeatures.GuestUso4)) != 0,
            _ => false,
        };
    }
}
