using VirtioNet.Core;
using VirtioNet.Net.Offloads;
using VirtioNet.Platform;

namespace VirtioNet.Net;

// Transmit offloads: checksum (VIRTIO_NET_F_CSUM) and segmentation (HOST_TSO4/6, HOST_ECN, HOST_USO) by the device when
// negotiated, in software otherwise. Large segments sent whole to the device use a few 64 KiB slots of their own, so
// the ordinary slots stay sized for one MTU-sized frame.
internal sealed partial class VirtioNetTransmitQueue
{
    // Large slots: a GSO packet needs the whole segment in one buffer. Eight keep 512 KiB in flight, the most a TCP
    // window without scaling (64 KiB) needs several times over, for about 0.5 MiB of DMA memory.
    private const int LargeSlotCount = 8;

    // The negotiated features the offload decisions go by; 0 until the device configures them.
    private ulong _offloadFeatures;

    // The negotiated features above 63 (HOST_UDP_TUNNEL_GSO, _CSUM), bit 64 in bit 0.
    private ulong _offloadFeaturesHigh;

    // The large slots' memory (default when the device cannot segment); slot k is at k * _largeSlotLength.
    private DmaRegion _largePool;

    // Bytes per large slot: a header and the largest GSO frame.
    private int _largeSlotLength;

    // Free large slots, a stack of indexes 0..LargeSlotCount-1 (queue token = slot count + index).
    private readonly int[] _freeLargeSlots = new int[LargeSlotCount];

    // How many entries of _freeLargeSlots are valid.
    private int _freeLargeCount;

    /// <summary>
    /// The features the offload decisions go by: VIRTIO_NET_F_CSUM, HOST_TSO4/6, HOST_ECN, HOST_USO when negotiated.
    /// </summary>
    public ulong OffloadFeatures => _offloadFeatures;

    /// <summary>The largest frame <see cref="TrySend(ReadOnlySpan{byte}, TransmitOffloadRequest)"/> accepts for segmentation.</summary>
    public static int MaxSegmentFrameLength => EthernetFrame.MaxGsoFrameLength;

    /// <summary>
    /// Sends a TCP or UDP frame over IPv4 or IPv6 with the offloads <paramref name="request"/> asks for, done by the
    /// device when negotiated and by the driver otherwise: the checksum (VIRTIO_NET_F_CSUM with NEEDS_CSUM, else
    /// computed here), and for a frame whose payload exceeds <see cref="TransmitOffloadRequest.SegmentSize"/> the
    /// segmentation (HOST_TSO4/TSO6/ECN/USO with a GSO header, else <see cref="SoftwareSegmentation"/> into as many
    /// frames). The IPv4 header checksum is the caller's (segmentation recomputes it per segment). Returns false on
    /// back-pressure: nothing was queued (a software-segmented frame goes all at once or not at all).
    /// Ref: virtio v1.2 §5.1.6.2.
    /// </summary>
    /// <param name="frame">The frame, Ethernet header onwards; up to <see cref="MaxSegmentFrameLength"/> bytes when segmented.</param>
    /// <param name="request">Checksum and segment size.</param>
    /// <exception cref="ArgumentException">
    /// The frame is not TCP or UDP over IPv4/IPv6, is too long to send unsegmented, or its segments would not fit the MTU.
    /// </exception>
    public bool TrySend(ReadOnlySpan<byte> frame, TransmitOffloadRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        return TrySendEntered(frame, request);
    }

    private bool TrySendEntered(ReadOnlySpan<byte> frame, TransmitOffloadRequest request)
    {
        if (!request.ComputeChecksum && request.SegmentSize == 0)
        {
            return TrySend(frame);
        }

        if (request.IsUdpTunnel)
        {
            return TrySendUdpTunnel(frame, request);
        }

        if (!PacketLayout.TryParse(frame, out PacketLayout layout))
        {
            throw new ArgumentException("Checksum and segmentation offloads apply to TCP or UDP over IPv4 or IPv6 (unfragmented, without IPv6 extension headers); this frame is neither.", nameof(frame));
        }

        TransmitOffloadDecision decision = TransmitOffload.Decide(frame, layout, request, _offloadFeatures);
        if (decision.SegmentInSoftware)
        {
            return Tallied(TrySendSegmented(frame, layout, decision), decision);
        }

        // The device cuts a GSO packet into gso_size pieces behind the headers, each a frame of its own on the wire: one
        // longer than the MTU allows is refused here as software segmentation refuses it (the device would not check).
        if (decision.GsoType != VirtioNetGsoType.None && layout.HeaderLength + decision.GsoSize > MaxFrameLength)
        {
            throw new ArgumentException($"Segments of {decision.GsoSize} payload bytes behind {layout.HeaderLength} bytes of headers exceed {MaxFrameLength} (MaxFrameLength); use a segment size that fits the MTU.", nameof(request));
        }

        if (!TryCopyIntoSlot(frame, deviceSegments: decision.GsoType != VirtioNetGsoType.None, out int slot, out Span<byte> room))
        {
            return Tallied(false, decision);
        }

        TransmitOffload.ApplyChecksum(room, layout, decision);
        return Tallied(EnqueueOne(slot, frame.Length, decision), decision);
    }

    /// <summary>
    /// The features above 63 the offload decisions go by (<see cref="VirtioFeatureSet.High"/>): HOST_UDP_TUNNEL_GSO and
    /// HOST_UDP_TUNNEL_GSO_CSUM when negotiated.
    /// </summary>
    public ulong OffloadFeaturesHigh => _offloadFeaturesHigh;

    /// <summary>Sets what the offload decisions go by, and sets up the large slots when the device can segment.</summary>
    internal void ConfigureOffloads(VirtioFeatureSet negotiatedSet)
    {
        ulong negotiated = negotiatedSet.Low;
        _offloadFeatures = negotiated;
        _offloadFeaturesHigh = negotiatedSet.High;
        const ulong deviceSegmentation = VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUso;
        if ((negotiated & deviceSegmentation) == 0 || _largeSlotLength != 0)
        {
            return;
        }

        int length = QueueSlots.ToCacheLines(_headerLength + EthernetFrame.MaxGsoFrameLength);
        _largePool = _dma.Allocate(checked(LargeSlotCount * length), QueueSlots.CacheLine);
        _largeSlotLength = length;
        for (int i = 0; i < LargeSlotCount; i++)
        {
            _freeLargeSlots[_freeLargeCount++] = LargeSlotCount - 1 - i;
        }
    }

    // A UDP-tunnelled frame (VXLAN, Geneve): one tunnel GSO packet for the device with HOST_UDP_TUNNEL_GSO, else the
    // inner packet cut here with the outer headers fixed per segment (virtio v1.4 §5.1.6.2).
    private bool TrySendUdpTunnel(ReadOnlySpan<byte> frame, TransmitOffloadRequest request)
    {
        if (!UdpTunnelLayout.TryParse(frame, request.UdpTunnelHeaderLength, out UdpTunnelLayout tunnel))
        {
            throw new ArgumentException($"A UDP tunnel offload applies to an outer UDP packet over IPv4 or IPv6 carrying {request.UdpTunnelHeaderLength} bytes of tunnel header and an inner Ethernet frame with TCP or UDP over IPv4 or IPv6 that fills it; this frame is not one.", nameof(frame));
        }

        TransmitOffloadDecision decision = TransmitOffload.DecideUdpTunnel(frame, tunnel, request, new VirtioFeatureSet(_offloadFeatures, _offloadFeaturesHigh));
        if (decision.SegmentInSoftware)
        {
            return Tallied(TrySendUdpTunnelSegmented(frame, tunnel, decision, request.OuterUdpChecksum), decision);
        }

        if (decision.IsUdpTunnelGso && tunnel.Inner.HeaderLength + decision.GsoSize > MaxFrameLength)
        {
            throw new ArgumentException($"Segments of {decision.GsoSize} payload bytes behind {tunnel.Inner.HeaderLength} bytes of headers exceed {MaxFrameLength} (MaxFrameLength); use a segment size that fits the MTU.", nameof(request));
        }

        if (!TryCopyIntoSlot(frame, deviceSegments: decision.IsUdpTunnelGso, out int slot, out Span<byte> room))
        {
            return Tallied(false, decision);
        }

        TransmitOffload.ApplyUdpTunnel(room, tunnel, decision, request.OuterUdpChecksum);
        return Tallied(EnqueueOne(slot, frame.Length, decision), decision);
    }

    // A copying send's tally, added at once (the call is the burst): what the decision had the device or the driver do
    // when the frame went, or one attempt the ring turned away when it did not.
    private bool Tallied(bool sent, in TransmitOffloadDecision decision)
    {
        BurstTally tally = default;
        if (sent)
        {
            tally.Count(decision);
        }
        else
        {
            tally.RingFull = 1;
        }

        Statistics.Add(ref tally);
        return sent;
    }

    // One frame the device takes whole: a free slot (a large one for a frame longer than the MTU, which only a
    // segmentation offload may send), the frame copied in. False when no slot is free (back-pressure).
    private bool TryCopyIntoSlot(ReadOnlySpan<byte> frame, bool deviceSegments, out int slot, out Span<byte> room)
    {
        bool large = frame.Length > MaxFrameLength;
        if (large && (!deviceSegments || _largeSlotLength == 0 || frame.Length > _largeSlotLength - _headerLength))
        {
            throw new ArgumentException($"A frame of {frame.Length} bytes is longer than {MaxFrameLength} (MaxFrameLength) and is not sent as a segmentation offload; ask for a segment size.", nameof(frame));
        }

        Reclaim();
        if (large ? _freeLargeCount == 0 : _freeCount == 0)
        {
            slot = -1;
            room = default;
            return false;
        }

        slot = large ? _freeSlots.Length + _freeLargeSlots[--_freeLargeCount] : TakeFreeSlot();
        (DmaRegion pool, int start) = LocateSlot(slot);
        room = pool.Span.Slice(start + _headerLength, frame.Length);
        frame.CopyTo(room);
        return true;
    }

    // The frame in `slot` behind the header `decision` asks for, then one notification.
    private bool EnqueueOne(int slot, int length, in TransmitOffloadDecision decision)
    {
        Span<byte> header = stackalloc byte[VirtioNetHeader.UdpTunnelLength];
        decision.WriteHeader(header[.._headerLength]);
        if (!Enqueue(slot, length, header[.._headerLength]))
        {
            ReturnSlot(slot);
            return false;
        }

        Kick();
        Statistics.AddPacket(length);
        return true;
    }

    // Before software segmentation: every segment must fit a slot and the MTU, and all of them must fit at once (false:
    // not enough free slots yet, back-pressure).
    private bool TryReserveSegments(int headersLength, int mss, int count, string frameParameter)
    {
        if (headersLength + mss > MaxFrameLength && count > 1)
        {
            throw new ArgumentException($"Segments of {mss} payload bytes behind {headersLength} bytes of headers exceed {MaxFrameLength} (MaxFrameLength); use a segment size that fits the MTU.", frameParameter);
        }

        if (count > _freeSlots.Length)
        {
            throw new ArgumentException($"The frame makes {count} segments of {mss} bytes, more than the {_freeSlots.Length} transmit buffers; use a larger segment size.", frameParameter);
        }

        Reclaim();
        return _freeCount >= count;
    }

    // The header every software segment carries: the decision's checksum request, no GSO.
    private static TransmitOffloadDecision SegmentHeader(in TransmitOffloadDecision decision, Span<byte> header)
    {
        var perSegment = new TransmitOffloadDecision
        {
            Flags = decision.Flags,
            CsumStart = decision.CsumStart,
            CsumOffset = decision.CsumOffset,
        };
        perSegment.WriteHeader(header);
        return perSegment;
    }

    private bool TrySendUdpTunnelSegmented(ReadOnlySpan<byte> frame, in UdpTunnelLayout tunnel, in TransmitOffloadDecision decision, bool outerUdpChecksum)
    {
        int mss = decision.SoftwareSegmentSize;
        int count = SoftwareSegmentation.SegmentCount(tunnel.Inner, mss);
        if (!TryReserveSegments(tunnel.Inner.HeaderLength, mss, count, nameof(frame)))
        {
            return false;
        }

        Span<byte> header = stackalloc byte[VirtioNetHeader.UdpTunnelLength];
        TransmitOffloadDecision perSegment = SegmentHeader(decision, header[.._headerLength]);
        for (int i = 0; i < count; i++)
        {
            int slot = TakeFreeSlot();
            int length = SoftwareSegmentation.WriteUdpTunnelSegment(frame, tunnel, mss, i, SegmentRoom(slot), perSegment, outerUdpChecksum);
            if (!QueueSegment(slot, length, header[.._headerLength]))
            {
                break;
            }
        }

        Kick();
        return true;
    }

    // Software segmentation: every segment in an ordinary slot, then one notification for all of them.
    private bool TrySendSegmented(ReadOnlySpan<byte> frame, in PacketLayout layout, in TransmitOffloadDecision decision)
    {
        int mss = decision.SoftwareSegmentSize;
        int count = SoftwareSegmentation.SegmentCount(layout, mss);
        if (!TryReserveSegments(layout.HeaderLength, mss, count, nameof(frame)))
        {
            return false;
        }

        Span<byte> header = stackalloc byte[VirtioNetHeader.UdpTunnelLength];
        TransmitOffloadDecision perSegment = SegmentHeader(decision, header[.._headerLength]);
        for (int i = 0; i < count; i++)
        {
            int slot = TakeFreeSlot();
            int length = SoftwareSegmentation.WriteSegment(frame, layout, mss, i, SegmentRoom(slot), partialChecksum: decision.NeedsChecksum);
            if (!QueueSegment(slot, length, header[.._headerLength]))
            {
                break;
            }
        }

        Kick();
        return true;
    }

    // The room after a slot's header, where one software segment is written.
    private Span<byte> SegmentRoom(int slot) => _pool.Span.Slice((slot * _slotLength) + _headerLength, _slotLength - _headerLength);

    // Queues one software segment written into its slot. The slots were counted before the first segment and each
    // ring entry has its slot, so the ring has room for all of them; should it refuse one anyway, the slot goes back,
    // the drop is counted and the caller stops.
    private bool QueueSegment(int slot, int length, ReadOnlySpan<byte> header)
    {
        if (!Enqueue(slot, length, header))
        {
            PutBackUnsent(slot);
            Statistics.AddDrop(VirtioNetDropReason.SegmentNotQueued);
            return false;
        }

        Statistics.AddPacket(length);
        return true;
    }

    private void Kick()
    {
        if (_queue.KickPrepare())
        {
            _notify(_queue.QueueIndex);
            Statistics.AddNotification();
        }
    }

    // Where a slot's header starts: an ordinary slot in _pool, or a large one (tokens from the slot count on).
    private (DmaRegion Pool, int Start) LocateSlot(int slot) =>
        slot < _freeSlots.Length ? (_pool, slot * _slotLength) : (_largePool, (slot - _freeSlots.Length) * _largeSlotLength);

    private void ReturnSlot(int slot)
    {
        if (!TryReleaseLargeSlot(slot))
        {
            PutBackUnsent(slot);
        }
    }

    // A completed large slot goes back to its own stack; false for an ordinary slot.
    private bool TryReleaseLargeSlot(int token)
    {
        if (token < _freeSlots.Length)
        {
            return false;
        }

        _freeLargeSlots[_freeLargeCount++] = token - _freeSlots.Length;
        return true;
    }

    private void FreeLargePool()
    {
        if (_largeSlotLength != 0)
        {
            _dma.Free(_largePool);
            _largeSlotLength = 0;
        }
    }
}
