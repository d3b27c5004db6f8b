using VirtioNet.Net.Offloads;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The zero-copy burst API of the transmit side: the caller writes frames straight into transmit buffers, and asks per
// packet for the checksum and segmentation offloads (TransmitPacket.WithOffload), as DPDK asks through an mbuf's ol_flags.
internal sealed partial class VirtioNetTransmitQueue
{
    /// <summary>
    /// Lends up to <paramref name="packets"/>.Length free transmit buffers (after reclaiming completed ones). Returns how
    /// many. Each must come back through <see cref="TransmitBurst(ReadOnlySpan{TransmitPacket}, out TransmitBurstStatus)"/>
    /// or <see cref="FreeBurst"/>.
    /// </summary>
    public int AllocateBurst(Span<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            return AllocateBurstEntered(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private int AllocateBurstEntered(Span<TransmitPacket> packets)
    {
        if (_freeCount < packets.Length)
        {
            Reclaim();
        }

        int count = Math.Min(packets.Length, _freeCount);
        for (int i = 0; i < count; i++)
        {
            int slot = _freeSlots[--_freeCount];
            packets[i] = new TransmitPacket(slot, _pool.Slice((slot * _slotLength) + _headerLength, MaxFrameLength), 0);
        }

        return count;
    }

    /// <summary>
    /// How many large transmit buffers (<see cref="AllocateLargeBurst"/>) the queue has: 0 when the device negotiated no
    /// segmentation offload, so that a caller can tell "none exist" (cut segments itself, or send MSS-sized frames) from
    /// "none free now" (reclaim and try again).
    /// </summary>
    public int LargeBufferCount => _largeSlotLength == 0 ? 0 : LargeSlotCount;

    /// <summary>
    /// Lends up to <paramref name="packets"/>.Length of the few large transmit buffers (<see cref="MaxSegmentFrameLength"/>
    /// bytes each), for TCP/UDP segments the device cuts (HOST_TSO4/TSO6/USO): fill one with a frame up to 64 KiB and ask
    /// <see cref="TransmitPacket.WithOffload"/> for segmentation. Returns how many; 0 when none is free, and always 0 when
    /// the device negotiated no segmentation offload (the large buffers exist only then).
    /// </summary>
    public int AllocateLargeBurst(Span<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            return AllocateLargeBurstEntered(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private int AllocateLargeBurstEntered(Span<TransmitPacket> packets)
    {
        if (_largeSlotLength == 0)
        {
            return 0;
        }

        if (_freeLargeCount < packets.Length)
        {
            Reclaim();
        }

        int count = Math.Min(packets.Length, _freeLargeCount);
        for (int i = 0; i < count; i++)
        {
            int index = _freeLargeSlots[--_freeLargeCount];
            packets[i] = new TransmitPacket(_freeSlots.Length + index, _largePool.Slice((index * _largeSlotLength) + _headerLength, MaxSegmentFrameLength), 0);
        }

        return count;
    }

    /// <summary>
    /// Hands the buffers to the device in order, with one notification at most for the whole burst. Returns how many
    /// were queued; the rest stay the caller's, to send later or free. Throws when a packet offloads nothing supported
    /// by the device and says so with <see cref="TransmitBurstStatus.OffloadUnavailable"/>: use the overload with a status.
    /// </summary>
    /// <exception cref="NotSupportedException">A packet asks for segmentation the device cannot do (the ones before it were sent).</exception>
    public int TransmitBurst(ReadOnlySpan<TransmitPacket> packets)
    {
        int sent = TransmitBurst(packets, out TransmitBurstStatus status);
        if (status == TransmitBurstStatus.OffloadUnavailable)
        {
            ThrowOffloadUnavailable(sent, packets[sent].Offload);
        }

        return sent;
    }

    /// <summary>
    /// Hands the buffers to the device in order, each behind the virtio_net_hdr its <see cref="TransmitPacket.Offload"/>
    /// asks for, with one notification at most for the whole burst. Returns how many were queued, and in
    /// <paramref name="status"/> why it stopped before the end; the rest stay the caller's. Offload requests are decided
    /// and checked as <see cref="TrySend(ReadOnlySpan{byte}, TransmitOffloadRequest)"/> does: the device's checksum with
    /// VIRTIO_NET_F_CSUM (the pseudo-header sum written into the frame, NEEDS_CSUM in the header), else the full
    /// checksum computed in place; device segmentation with HOST_TSO4/TSO6/ECN/USO (a GSO header), else the packet is
    /// refused with <see cref="TransmitBurstStatus.OffloadUnavailable"/>, since software segmentation would copy. Only
    /// the frame's checksum field is written; the IPv4 header checksum is the caller's. Ref: virtio v1.2 §5.1.6.2.
    /// </summary>
    /// <param name="packets">Buffers from <see cref="AllocateBurst"/> or <see cref="AllocateLargeBurst"/>, lengths set.</param>
    /// <param name="status">Why the burst stopped; <see cref="TransmitBurstStatus.Complete"/> when every packet was queued.</param>
    /// <exception cref="ArgumentException">
    /// A buffer is not this queue's; a length is out of range (14 to MaxFrameLength, or to
    /// <see cref="MaxSegmentFrameLength"/> in a large buffer sent with device segmentation); an offload is asked of a frame
    /// that is not TCP or UDP over IPv4/IPv6; or its segments would not fit the MTU. The packets before it were sent.
    /// </exception>
    public int TransmitBurst(ReadOnlySpan<TransmitPacket> packets, out TransmitBurstStatus status)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            return TransmitBurstEntered(packets, out status);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private int TransmitBurstEntered(ReadOnlySpan<TransmitPacket> packets, out TransmitBurstStatus status)
    {
        status = TransmitBurstStatus.Complete;
        Span<byte> header = stackalloc byte[VirtioNetHeader.HashReportLength];
        int sent = 0;
        try
        {
            foreach (TransmitPacket packet in packets)
            {
                CheckOwned(packet);
                status = PrepareHeader(packet, sent, header[.._headerLength]);
                if (status != TransmitBurstStatus.Complete)
                {
                    break;
                }

                if (!Enqueue(packet.Slot, packet.Length, header[.._headerLength]))
                {
                    status = TransmitBurstStatus.RingFull;
                    break;
                }

                Statistics.AddPacket(packet.Length);
                sent++;
            }
        }
        finally
        {
            // Also when a bad packet throws: the ones before it are in the ring and must reach the device.
            if (sent > 0 && _queue.KickPrepare())
            {
                _notify(_queue.QueueIndex);
                Statistics.AddNotification();
            }
        }

        return sent;
    }

    /// <summary>Returns lent buffers without sending them.</summary>
    public void FreeBurst(ReadOnlySpan<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            FreeBurstEntered(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private void FreeBurstEntered(ReadOnlySpan<TransmitPacket> packets)
    {
        foreach (TransmitPacket packet in packets)
        {
            CheckOwned(packet);
            ReturnSlot(packet.Slot);
        }
    }

    // Checks the packet's length and offload request, writes its checksum field as decided, and fills header. Writing
    // the field is idempotent (the pseudo-header sum, or the full checksum over a zeroed field), so a packet refused
    // afterwards for a full ring can be sent again as it is.
    private TransmitBurstStatus PrepareHeader(TransmitPacket packet, int index, Span<byte> header)
    {
        bool large = packet.Slot >= _freeSlots.Length;
        int limit = large ? MaxSegmentFrameLength : MaxFrameLength;
        if (packet.Length < EthernetFrame.HeaderLength || packet.Length > limit)
        {
            throw new ArgumentException($"A frame must be {EthernetFrame.HeaderLength} to {limit} bytes long; packet {index} has {packet.Length}.", nameof(packet));
        }

        TransmitOffloadRequest request = packet.Offload;
        if (!request.ComputeChecksum && request.SegmentSize == 0)
        {
            if (packet.Length > MaxFrameLength)
            {
                throw new ArgumentException($"Packet {index} ({packet.Length} bytes) is longer than {MaxFrameLength} (MaxFrameLength) and asks for no segmentation.", nameof(packet));
            }

            // §5.1.6.2: flags 0 and gso_type VIRTIO_NET_HDR_GSO_NONE: a complete frame with its checksums in place.
            header.Clear();
            return TransmitBurstStatus.Complete;
        }

        Span<byte> frame = packet.Room.Span[..packet.Length];
        if (!PacketLayout.TryParse(frame, out PacketLayout layout))
        {
            throw new ArgumentException($"Packet {index} asks for an offload, which applies to TCP or UDP over IPv4 or IPv6 (unfragmented, without IPv6 extension headers); it is neither.", nameof(packet));
        }

        TransmitOffloadDecision decision = TransmitOffload.Decide(frame, layout, request, _offloadFeatures);
        if (decision.SegmentInSoftware)
        {
            return TransmitBurstStatus.OffloadUnavailable;
        }

        // As TrySend: each segment the device cuts is a frame on the wire and must fit the MTU (the device would not check).
        if (decision.GsoType != VirtioNetGsoType.None && layout.HeaderLength + decision.GsoSize > MaxFrameLength)
        {
            throw new ArgumentException($"Packet {index}: segments of {decision.GsoSize} payload bytes behind {layout.HeaderLength} bytes of headers exceed {MaxFrameLength} (MaxFrameLength); use a segment size that fits the MTU.", nameof(packet));
        }

        if (packet.Length > MaxFrameLength && decision.GsoType == VirtioNetGsoType.None)
        {
            throw new ArgumentException($"Packet {index} ({packet.Length} bytes) is longer than {MaxFrameLength} (MaxFrameLength) and its payload is not larger than the segment size, so it would go unsegmented.", nameof(packet));
        }

        TransmitOffload.ApplyChecksum(frame, layout, decision);
        decision.WriteHeader(header);
        return TransmitBurstStatus.Complete;
    }

    private void CheckOwned(TransmitPacket packet)
    {
        bool owned = packet.Slot >= 0 && (packet.Slot < _freeSlots.Length
            ? packet.Room.Pointer == _pool.Pointer + (packet.Slot * _slotLength) + _headerLength
            : _largeSlotLength != 0 && packet.Slot < _freeSlots.Length + LargeSlotCount &&
              packet.Room.Pointer == _largePool.Pointer + ((packet.Slot - _freeSlots.Length) * _largeSlotLength) + _headerLength);
        if (!owned)
        {
            throw new ArgumentException($"The packet is not a buffer of {Statistics.Name}.", nameof(packet));
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowOffloadUnavailable(int index, TransmitOffloadRequest request) =>
        throw new NotSupportedException($"Packet {index} asks for segmentation into {request.SegmentSize}-byte segments, which the device did not negotiate (HOST_TSO4/TSO6/USO, or HOST_ECN for a CWR segment); the packets before it were sent. Use TransmitBurst(packets, out status), or TrySend(frame, request), which segments in software.");
}
