using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// Cuts a large TCP or UDP segment into packets of at most a given payload, in software: the fallback when the device
/// lacks HOST_TSO4/TSO6/ECN/USO, so callers can always hand over large segments. Each packet gets the original headers
/// with its own lengths, IPv4 identification (incremented per packet, as a TSO device does) and header checksum, TCP
/// sequence number and flags (FIN and PSH on the last only, CWR on the first only), and its checksum: complete, or the
/// pseudo-header sum for a device that completes it (VIRTIO_NET_F_CSUM). UDP packets are whole datagrams each (USO
/// semantics, not IP fragments). Allocates nothing.
/// </summary>
public static class SoftwareSegmentation
{
    private const byte TcpFlagFin = 0x01;
    private const byte TcpFlagPsh = 0x08;

    /// <summary>How many packets <see cref="WriteSegment"/> makes of the packet <paramref name="layout"/> describes.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="segmentSize"/> is not positive.</exception>
    public static int SegmentCount(in PacketLayout layout, int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(segmentSize);
        return Math.Max(1, (layout.PayloadLength + segmentSize - 1) / segmentSize);
    }

    /// <summary>The length of packet <paramref name="index"/>'s frame.</summary>
    public static int SegmentLength(in PacketLayout layout, int segmentSize, int index)
    {
        int count = SegmentCount(layout, segmentSize);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, count);
        return layout.HeaderLength + Math.Min(segmentSize, layout.PayloadLength - (index * segmentSize));
    }

    /// <summary>
    /// Writes packet <paramref name="index"/> (0-based) of the cut into <paramref name="destination"/> and returns its
    /// length. With <paramref name="partialChecksum"/> the checksum field holds the pseudo-header sum for the device
    /// to complete (send it with VIRTIO_NET_HDR_F_NEEDS_CSUM); otherwise the full checksum.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is too short.</exception>
    public static int WriteSegment(ReadOnlySpan<byte> frame, in PacketLayout layout, int segmentSize, int index, Span<byte> destination, bool partialChecksum)
    {
        int length = SegmentLength(layout, segmentSize, index);
        if (destination.Length < length)
        {
            throw new ArgumentException($"Segment {index} needs {length} bytes; the destination has {destination.Length}.", nameof(destination));
        }

        bool first = index == 0;
        bool last = index == SegmentCount(layout, segmentSize) - 1;
        int payloadStart = index * segmentSize;
        frame[..layout.HeaderLength].CopyTo(destination);
        frame.Slice(layout.HeaderLength + payloadStart, length - layout.HeaderLength).CopyTo(destination[layout.HeaderLength..]);
        Span<byte> segment = destination[..length];

        FixIpHeader(segment, layout, index);

        int transport = layout.TransportOffset;
        if (layout.IsTcp)
        {
            uint sequence = BinaryPrimitives.ReadUInt32BigEndian(segment[(transport + 4)..]);
            BinaryPrimitives.WriteUInt32BigEndian(segment[(transport + 4)..], unchecked(sequence + (uint)payloadStart));
            byte flags = segment[transport + TransmitOffload.TcpFlagsOffset];
            if (!last)
            {
                flags &= unchecked((byte)~(TcpFlagFin | TcpFlagPsh));
            }

            if (!first)
            {
                flags &= unchecked((byte)~TransmitOffload.TcpFlagCwr);
            }

            segment[transport + TransmitOffload.TcpFlagsOffset] = flags;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(segment[(transport + 4)..], (ushort)(length - transport));
        }

        PacketLayout cut = layout with { PacketEnd = length };
        if (partialChecksum)
        {
            ushort pseudo = InternetChecksum.PseudoHeaderChecksum(cut.SourceAddress(segment), cut.DestinationAddress(segment), cut.Protocol, cut.TransportLength);
            BinaryPrimitives.WriteUInt16BigEndian(segment[(transport + cut.ChecksumFieldOffset)..], pseudo);
        }
        else
        {
            TransmitOffload.WriteFullChecksum(segment, cut);
        }

        return length;
    }

    /// <summary>
    /// Writes packet <paramref name="index"/> of the cut of a UDP-tunnelled frame's inner packet (segments of
    /// <paramref name="segmentSize"/> inner payload bytes, as <see cref="WriteSegment"/> cuts a plain one, with
    /// <see cref="SegmentCount"/> and <see cref="SegmentLength"/> over <see cref="UdpTunnelLayout.Inner"/>) and returns its
    /// length. The outer headers are fixed per packet: IPv4 total length, identification (incremented per packet) and
    /// header checksum, or the IPv6 payload length; the UDP length; the UDP checksum zero, or with
    /// <paramref name="outerUdpChecksum"/> filled. <paramref name="perPacket"/> says which checksum the device completes
    /// (its csum_start: the inner transport header, or the outer UDP header); the other is computed here.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is too short.</exception>
    public static int WriteUdpTunnelSegment(
        ReadOnlySpan<byte> frame, in UdpTunnelLayout tunnel, int segmentSize, int index, Span<byte> destination, in TransmitOffloadDecision perPacket, bool outerUdpChecksum)
    {
        bool innerPartial = perPacket.NeedsChecksum && perPacket.CsumStart == tunnel.Inner.TransportOffset;
        int length = WriteSegment(frame, tunnel.Inner, segmentSize, index, destination, innerPartial);
        Span<byte> segment = destination[..length];

        PacketLayout outer = tunnel.Outer with { PacketEnd = length };
        FixIpHeader(segment, outer, index);

        bool outerPartial = perPacket.NeedsChecksum && perPacket.CsumStart == outer.TransportOffset;
        TransmitOffload.FinishOuterUdp(segment, outer, outerUdpChecksum, outerPartial);
        return length;
    }

    // The IP header of segment `index` (the whole segment is `segment`): IPv6 payload length, or IPv4 total length,
    // identification (the original's plus the index, as Linux's GSO numbers them) and header checksum.
    private static void FixIpHeader(Span<byte> segment, in PacketLayout layout, int index)
    {
        int network = layout.NetworkOffset;
        if (layout.IsIPv6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(segment[(network + 4)..], (ushort)(segment.Length - layout.TransportOffset));
            return;
        }

        int ihl = layout.TransportOffset - network;
        BinaryPrimitives.WriteUInt16BigEndian(segment[(network + 2)..], (ushort)(segment.Length - network));
        ushort id = BinaryPrimitives.ReadUInt16BigEndian(segment[(network + 4)..]);
        BinaryPrimitives.WriteUInt16BigEndian(segment[(network + 4)..], (ushort)(id + index));
        segment[network + 10] = 0;
        segment[network + 11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(segment[(network + 10)..], InternetChecksum.Compute(segment.Slice(network, ihl)));
    }
}
