using System.Buffers.Binary;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Net;

// Receive offloads on the burst API: each packet's header goes through the copying path's validator
// (ReceiveOffload.TryValidate), and what it said travels in the packet's first entry, as ol_flags travel in an mbuf.
// Checksums are completed or verified in place, across the segments of a multi-buffer packet, only when asked.
internal sealed partial class VirtioNetReceiveQueue
{
    // Checksums and coalesced packets of the burst under way, added to Statistics once at its end (ReceiveBurstCore).
    private BurstTally _tally;

    // Checks the header of the packet whose entries are segments (its first buffer still holds the header), completes
    // or verifies the checksum as options ask, and puts the result in segments[0]. False: the header lies.
    private bool TryCheckBurstOffloads(Span<ReceivedPacket> segments, int frameLength, ReceiveBurstOptions options)
    {
        ReadOnlySpan<byte> header = _pool.Span.Slice(BufferStart(segments[0].Slot), _headerLength);

        // The common case, first: no flag, no GSO and no hash to report leave nothing to check or hand out (the
        // validator would say the same), and the packet keeps the metadata it was built with.
        if ((header[VirtioNetHeader.FlagsOffset] | header[VirtioNetHeader.GsoTypeOffset]) == 0 && !_hashReported)
        {
            return true;
        }

        if (!ReceiveOffload.TryValidate(header, segments[0].Span, frameLength, _offloadFeatures, out ReceivedFrameInfo info, out PacketLayout layout, out bool parsed))
        {
            return false;
        }

        // A UDP-tunnel frame whose outer UDP checksum is partial too (UDP_TUNNEL_CSUM) is completed whatever the options:
        // the outer sum covers the inner checksum, so a caller could not finish it from one reported position.
        bool outerPartial = ReceiveOffload.IsOuterChecksumPartial(header, info);
        if (info.Checksum == ReceivedChecksumState.Partial && ((options & ReceiveBurstOptions.CompletePartialChecksums) != 0 || outerPartial))
        {
            // The sum runs to the end of the IP packet, not into Ethernet padding (as in ReceiveOffload.TryProcess).
            int end = parsed ? layout.PacketEnd : frameLength;
            CompleteAcrossSegments(segments, info.ChecksumStart, info.ChecksumStart + info.ChecksumOffset, end);
            if (outerPartial)
            {
                CompleteAcrossSegments(segments, info.OuterTransportOffset, info.OuterTransportOffset + 6, end);
            }

            info = info with { Checksum = ReceivedChecksumState.Completed, ChecksumStart = 0, ChecksumOffset = 0 };
        }
        else if (info.Checksum == ReceivedChecksumState.DeviceValidated && parsed && (options & ReceiveBurstOptions.VerifyDataValid) != 0)
        {
            info = info with { Checksum = IsTransportChecksumValid(segments, layout) ? ReceivedChecksumState.Verified : ReceivedChecksumState.Invalid };
        }

        if (info.CoalescedSegments > 0)
        {
            Statistics.AddCoalescedSegments(info.CoalescedSegments);
        }

        _tally.Count(info);
        int slot = segments[0].Slot;
        _slotInfo[slot] = info;
        _slotHash[slot] = _hashReported ? ReceiveHash.Read(header) : default;
        _slotHasInfo[slot] = true;
        return true;
    }

    // InternetChecksum.CompletePartial over the segments of a packet: the sum from start to end, complemented, stored at field.
    private static void CompleteAcrossSegments(Span<ReceivedPacket> segments, int start, int field, int end)
    {
        ushort checksum = (ushort)~Sum(segments, start, end, 0);
        WriteByte(segments, field, (byte)(checksum >> 8));
        WriteByte(segments, field + 1, (byte)checksum);
    }

    // ReceiveOffload.IsTransportChecksumValid over the segments of a packet whose headers lie in the first.
    private static bool IsTransportChecksumValid(ReadOnlySpan<ReceivedPacket> segments, in PacketLayout layout)
    {
        ReadOnlySpan<byte> head = segments[0].Span;
        if (segments.Length == 1)
        {
            return ReceiveOffload.IsTransportChecksumValid(head, layout);
        }

        if (!layout.IsTcp && !layout.IsIPv6 && BinaryPrimitives.ReadUInt16BigEndian(head[(layout.TransportOffset + 6)..]) == 0)
        {
            return true;
        }

        uint pseudo = InternetChecksum.PseudoHeaderSum(layout.SourceAddress(head), layout.DestinationAddress(head), layout.Protocol, layout.TransportLength);
        return Sum(segments, layout.TransportOffset, layout.PacketEnd, pseudo) == 0xFFFF;
    }

    // The one's complement sum (RFC 1071) of bytes [from, to) of the packet, added to sum, as if they were contiguous. A
    // piece that starts an odd number of bytes after from has its sum byte-swapped (RFC 1071 §2(B): byte order
    // independence), so segments of any length chain correctly.
    private static uint Sum(ReadOnlySpan<ReceivedPacket> segments, int from, int to, uint sum)
    {
        ulong acc = sum;
        int position = 0;
        foreach (ref readonly ReceivedPacket segment in segments)
        {
            int first = Math.Max(from, position);
            int last = Math.Min(to, position + segment.Length);
            if (first < last)
            {
                uint piece = InternetChecksum.Add(segment.Span[(first - position)..(last - position)]);
                acc += ((first - from) & 1) == 0 ? piece : ((piece & 0xFF) << 8) | (piece >> 8);
            }

            position += segment.Length;
        }

        return InternetChecksum.Fold(acc);
    }

    // Stores one byte at offset position of the packet; the validator checked that it lies inside.
    private static void WriteByte(ReadOnlySpan<ReceivedPacket> segments, int position, byte value)
    {
        foreach (ref readonly ReceivedPacket segment in segments)
        {
            if (position < segment.Length)
            {
                segment.Span[position] = value;
                return;
            }

            position -= segment.Length;
        }
    }
}
