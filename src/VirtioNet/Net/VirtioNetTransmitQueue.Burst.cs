using VirtioNet.Net.Offloads;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The zero-copy burst API of the transmit side: the caller writes frames straight into transmit buffers, and asks per
// packet for the checksum and segmentation offloads (TransmitPacket.WithOffload), as DPDK asks through an mbuf's ol_flags.
internal sealed partial class VirtioNetTransmitQueue
{
    // Per slot (ordinary, then large): the offload request the caller set on the lent buffer; default whenever the slot
    // is free or in flight, so a buffer lent again starts with none.
    private TransmitOffloadRequest[] _offloads = [];

    // Per slot: true while _offloads[slot] asks for something, so the common packet reads one byte, not the request.
    private bool[] _hasOffload = [];

    // _pool.Pointer, for the header stores of the fast path.
    private nint _poolBase;

    // Decided once (DmaSync.IsNeeded): whether the allocator's sync methods do anything. False on coherent platforms,
    // where the packet path then makes no call at all.
    private bool _syncDma;

    // Sets up what the burst path needs; called once by the constructor.
    private void InitializeBurst(IDmaAllocator dma)
    {
        _offloads = new TransmitOffloadRequest[_freeSlots.Length + LargeSlotCount];
        _hasOffload = new bool[_offloads.Length];
        _poolBase = _pool.Pointer;
        _syncDma = DmaSync.IsNeeded(dma);
    }

    /// <summary>
    /// Lends up to <paramref name="packets"/>.Length free transmit buffers (after reclaiming completed ones). Returns how
    /// many. Each must come back through <see cref="TransmitBurst(ReadOnlySpan{TransmitPacket}, out TransmitBurstStatus)"/>
    /// or <see cref="FreeBurst"/>.
    /// </summary>
    public int AllocateBurst(Span<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        return AllocateBurstEntered(packets);
    }

    private int AllocateBurstEntered(Span<TransmitPacket> packets)
    {
        if (_freeCount < packets.Length)
        {
            ReclaimEntered();
        }

        int count = Math.Min(packets.Length, _freeCount);
        if (count == 0 && packets.Length > 0)
        {
            Statistics.AddRingFull();
        }

        int[] free = _freeSlots;
        int first = _freeFirst;
        for (int i = 0; i < count; i++)
        {
            // One 16-byte handle per packet, written in place; length 0 and no offload until the caller sets them.
            packets[i] = new TransmitPacket(this, free[first]);
            first = first + 1 == free.Length ? 0 : first + 1;
        }

        _freeFirst = first;
        _freeCount -= count;
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
        using QueueGate.Scope inside = _gate.EnterScope();
        return AllocateLargeBurstEntered(packets);
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
            packets[i] = new TransmitPacket(this, _freeSlots.Length + _freeLargeSlots[--_freeLargeCount]);
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
            ThrowOffloadUnavailable(sent, GetOffload(packets[sent].Slot));
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
        using QueueGate.Scope inside = _gate.EnterScope();
        return TransmitBurstEntered(packets, out status);
    }

    // The packet loop: each handle is read in place (no copy of the struct), a packet without an offload request costs
    // its ownership check, a constant-size header store and one descriptor, and the statistics and the notification
    // are settled once for the burst. Packets with an offload request, or in a large buffer, take PrepareHeader.
    private int TransmitBurstEntered(ReadOnlySpan<TransmitPacket> packets, out TransmitBurstStatus status)
    {
        status = TransmitBurstStatus.Complete;
        int sent = 0;
        long bytes = 0;
        int ordinary = _freeSlots.Length;
        int maxFrame = MaxFrameLength;

        // Checksums and segmentation of the packets queued, and a stop for want of room: added once, at the end.
        BurstTally tally = default;
        try
        {
            for (; sent < packets.Length; sent++)
            {
                ref readonly TransmitPacket packet = ref packets[sent];
                int slot = packet.Slot;
                int length = packet.Length;
                if (packet.Queue != this || (uint)slot >= (uint)_hasOffload.Length)
                {
                    ThrowNotOwned(sent, nameof(packets));
                }

                bool queued;
                if (slot < ordinary && !_hasOffload[slot])
                {
                    if ((uint)(length - EthernetFrame.HeaderLength) > (uint)(maxFrame - EthernetFrame.HeaderLength))
                    {
                        ThrowBadLength(sent, length, maxFrame, nameof(packets));
                    }

                    queued = EnqueuePlain(slot, length);
                }
                else
                {
                    BurstTally packetTally = default;
                    status = PrepareHeader(slot, length, sent, _headerScratch.AsSpan(0, _headerLength), nameof(packets), ref packetTally);
                    if (status != TransmitBurstStatus.Complete)
                    {
                        break;
                    }

                    queued = Enqueue(slot, length, _headerScratch.AsSpan(0, _headerLength));
                    if (queued)
                    {
                        ClearOffload(slot);
                        tally.Add(packetTally);
                    }
                }

                if (!queued)
                {
                    status = TransmitBurstStatus.RingFull;
                    tally.RingFull++;
                    break;
                }

                bytes += length;
            }
        }
        finally
        {
            // Also when a bad packet throws: the ones before it are in the ring and must reach the device.
            Statistics.Add(ref tally);
            if (sent > 0)
            {
                Statistics.AddPackets(sent, bytes);
                if (_queue.KickPrepare())
                {
                    _notify(_queue.QueueIndex);
                    Statistics.AddNotification();
                }
            }
        }

        return sent;
    }

    // An ordinary slot behind a zeroed header (§5.1.6.2: flags 0 and gso_type VIRTIO_NET_HDR_GSO_NONE, a complete frame
    // with its checksums in place), in one descriptor unless a legacy device wants the header apart.
    private bool EnqueuePlain(int slot, int length)
    {
        int start = slot * _slotLength;
        WriteZeroHeader(_poolBase + start);
        if (_syncDma)
        {
            // The header and frame must reach memory before the descriptor that names them is published (§2.7.13.1).
            _dma.SyncForDevice(_pool.Slice(start, _headerLength + length));
        }

        if (_headerInOwnDescriptor)
        {
            return Enqueue(slot, length);
        }

        return _queue.TryAddOne(_pool.DeviceAddress + (ulong)start, (uint)(_headerLength + length), deviceWritable: false, slot);
    }

    // The header zeroed with stores of constant size: 10, 12, 20 or 24 bytes, never past it into the frame.
    private unsafe void WriteZeroHeader(nint header)
    {
        // SAFETY: header is the start of a slot of _pool (or of the large pool), which holds _headerLength bytes there;
        // the driver owns the slot until it is added to the ring below.
        byte* h = (byte*)header;
        *(ulong*)h = 0;
        switch (_headerLength)
        {
            case VirtioNetHeader.LegacyLength:
                *(ushort*)(h + 8) = 0;
                break;
            case VirtioNetHeader.Length:
                *(uint*)(h + 8) = 0;
                break;
            case VirtioNetHeader.HashReportLength:
                *(ulong*)(h + 8) = 0;
                *(uint*)(h + 16) = 0;
                break;
            default:
                new Span<byte>(h + 8, _headerLength - 8).Clear();
                break;
        }
    }

    /// <summary>Returns lent buffers without sending them.</summary>
    public void FreeBurst(ReadOnlySpan<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        FreeBurstEntered(packets);
    }

    private void FreeBurstEntered(ReadOnlySpan<TransmitPacket> packets)
    {
        // Last first, so that the slots are at the front of the free ring in the order they were lent.
        for (int i = packets.Length - 1; i >= 0; i--)
        {
            ref readonly TransmitPacket packet = ref packets[i];
            if (packet.Queue != this || (uint)packet.Slot >= (uint)_hasOffload.Length)
            {
                ThrowNotOwned(i, nameof(packets));
            }

            ClearOffload(packet.Slot);
            ReturnSlot(packet.Slot);
        }
    }

    /// <summary>The buffer of a lent slot, as <see cref="TransmitPacket.Span"/> hands it out.</summary>
    internal Span<byte> BufferSpan(int slot)
    {
        if ((uint)slot < (uint)_freeSlots.Length)
        {
            return _pool.Span.Slice((slot * _slotLength) + _headerLength, MaxFrameLength);
        }

        return _largePool.Span.Slice(((slot - _freeSlots.Length) * _largeSlotLength) + _headerLength, MaxSegmentFrameLength);
    }

    /// <summary>The offload request of a lent slot.</summary>
    internal TransmitOffloadRequest GetOffload(int slot) => (uint)slot < (uint)_offloads.Length ? _offloads[slot] : default;

    /// <summary>Sets the offload request of a lent slot (see <see cref="TransmitPacket.Offload"/>).</summary>
    internal void SetOffload(int slot, TransmitOffloadRequest request)
    {
        if ((uint)slot >= (uint)_offloads.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"Not a buffer of {Statistics.Name}.");
        }

        _offloads[slot] = request;
        _hasOffload[slot] = request.ComputeChecksum || request.SegmentSize != 0;
    }

    private void ClearOffload(int slot)
    {
        if (_hasOffload[slot])
        {
            _offloads[slot] = default;
            _hasOffload[slot] = false;
        }
    }

    // Scratch for the header of a packet with an offload request (the longest header there is).
    private readonly byte[] _headerScratch = new byte[VirtioNetHeader.UdpTunnelLength];

    // Checks the packet's length and offload request, writes its checksum field as decided, and fills header. Writing
    // the field is idempotent (the pseudo-header sum, or the full checksum over a zeroed field), so a packet refused
    // afterwards for a full ring can be sent again as it is.
    private TransmitBurstStatus PrepareHeader(int slot, int length, int index, Span<byte> header, string paramName, ref BurstTally tally)
    {
        bool large = slot >= _freeSlots.Length;
        int limit = large ? MaxSegmentFrameLength : MaxFrameLength;
        if (length < EthernetFrame.HeaderLength || length > limit)
        {
            ThrowBadLength(index, length, limit, paramName);
        }

        TransmitOffloadRequest request = _offloads[slot];
        if (!request.ComputeChecksum && request.SegmentSize == 0)
        {
            if (length > MaxFrameLength)
            {
                throw new ArgumentException($"Packet {index} ({length} bytes) is longer than {MaxFrameLength} (MaxFrameLength) and asks for no segmentation.", paramName);
            }

            // §5.1.6.2: flags 0 and gso_type VIRTIO_NET_HDR_GSO_NONE: a complete frame with its checksums in place.
            header.Clear();
            return TransmitBurstStatus.Complete;
        }

        Span<byte> frame = BufferSpan(slot)[..length];
        if (!PacketLayout.TryParse(frame, out PacketLayout layout))
        {
            throw new ArgumentException($"Packet {index} asks for an offload, which applies to TCP or UDP over IPv4 or IPv6 (unfragmented, without IPv6 extension headers); it is neither.", paramName);
        }

        TransmitOffloadDecision decision = TransmitOffload.Decide(frame, layout, request, _offloadFeatures);
        if (decision.SegmentInSoftware)
        {
            return TransmitBurstStatus.OffloadUnavailable;
        }

        // As TrySend: each segment the device cuts is a frame on the wire and must fit the MTU (the device would not check).
        if (decision.GsoType != VirtioNetGsoType.None && layout.HeaderLength + decision.GsoSize > MaxFrameLength)
        {
            throw new ArgumentException($"Packet {index}: segments of {decision.GsoSize} payload bytes behind {layout.HeaderLength} bytes of headers exceed {MaxFrameLength} (MaxFrameLength); use a segment size that fits the MTU.", paramName);
        }

        if (length > MaxFrameLength && decision.GsoType == VirtioNetGsoType.None)
        {
            throw new ArgumentException($"Packet {index} ({length} bytes) is longer than {MaxFrameLength} (MaxFrameLength) and its payload is not larger than the segment size, so it would go unsegmented.", paramName);
        }

        TransmitOffload.ApplyChecksum(frame, layout, decision);
        decision.WriteHeader(header);
        tally.Count(decision);
        return TransmitBurstStatus.Complete;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void ThrowNotOwned(int index, string paramName) =>
        throw new ArgumentException($"Packet {index} is not a buffer of {Statistics.Name}.", paramName);

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void ThrowBadLength(int index, int length, int limit, string paramName) =>
        throw new ArgumentException($"A frame must be {EthernetFrame.HeaderLength} to {limit} bytes long; packet {index} has {length}.", paramName);

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowOffloadUnavailable(int index, TransmitOffloadRequest request) =>
        throw new NotSupportedException($"Packet {index} asks for segmentation into {request.SegmentSize}-byte segments, which the device did not negotiate (HOST_TSO4/TSO6/USO, or HOST_ECN for a CWR segment); the packets before it were sent. Use TransmitBurst(packets, out status), or TrySend(frame, request), which segments in software.");
}
