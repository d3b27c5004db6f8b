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
    {
        if (!TryValidate(header, frame, frame.Length, negotiated, out info, out PacketLayout layout, out bool parsed))
        {
            return false;
        }

        if (info.Checksum == ReceivedChecksumState.Partial)
        {
            // The sum runs to the end of the IP packet, not into Ethernet padding a device might have left after it.
            InternetChecksum.CompletePartial(frame[..(parsed ? layout.PacketEnd : frame.Length)], info.ChecksumStart, info.ChecksumOffset);
            info = info with { Checksum = ReceivedChecksumState.Completed, ChecksumStart = 0, ChecksumOffset = 0 };
        }
        else if (info.Checksum == ReceivedChecksumState.DeviceValidated && verifyDataValid && parsed)
        {
            info = info with { Checksum = IsTransportChecksumValid(frame, layout) ? ReceivedChecksumState.Verified : ReceivedChecksumState.Invalid };
        }

        return true;
    }

    /// <summary>
    /// The checks of <see cref="TryProcess"/> without touching the frame's bytes: the one validator of the copying and
    /// the burst receive paths. <paramref name="head"/> is the contiguous start of a frame of <paramref name="frameLength"/>
    /// bytes (the whole frame, or a mergeable packet's first buffer, which must then hold every header). Returns false
    /// for a header that lies; otherwise <paramref name="info"/> says <see cref="ReceivedChecksumState.Partial"/> (with
    /// where, checked to lie inside the IP packet), <see cref="ReceivedChecksumState.DeviceValidated"/> or
    /// <see cref="ReceivedChecksumState.None"/>, and the caller completes or verifies as it was asked.
    /// </summary>
    internal static bool TryValidate(
        ReadOnlySpan<byte> header, ReadOnlySpan<byte> head, int frameLength, ulong negotiated, out ReceivedFrameInfo info, out PacketLayout layout, out bool parsed)
    {
        info = default;
        layout = default;
        parsed = false;
        if (header.Length < VirtioNetHeader.LegacyLength)
        {
            return false;
        }

        // §5.1.6.4.2: the driver ignores flag bits it does not recognise (later versions of the spec add some, such as
        // the UDP tunnel checksum bit); the ones it knows are checked below.
        byte flags = (byte)(header[VirtioNetHeader.FlagsOffset] & (KnownFlags | VirtioNetHeader.FlagRscInfo));
        var gso = (VirtioNetGsoType)header[VirtioNetHeader.GsoTypeOffset];
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
