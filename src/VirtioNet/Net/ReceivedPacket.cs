using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Platform;

namespace VirtioNet.Net;

/// <summary>
/// One buffer of a received packet, handed out by <see cref="VirtioNetReceiveQueue.ReceiveBurst(Span{ReceivedPacket}, ReceiveBurstOptions)"/> without copying: the
/// frame bytes stay in the receive buffer the device wrote, until the caller gives the buffer back with
/// <see cref="VirtioNetReceiveQueue.ReleaseBurst"/>. A packet that spans several mergeable buffers arrives as
/// consecutive entries: the first with <see cref="SegmentCount"/> &gt; 1, the rest with <see cref="IsContinuation"/> set,
/// the way an mbuf chain carries a jumbo frame in DPDK. The first entry also carries what the virtio_net_hdr said,
/// checked as the copying path checks it (<see cref="Offload"/>, <see cref="Hash"/>), as an mbuf carries its ol_flags.
/// </summary>
/// <remarks>
/// A handle of 16 bytes (the queue, the slot with the segment count, and the length), written once per packet by the
/// receive loop and meant to be read in place (<c>ref readonly ReceivedPacket p = ref packets[i]</c>). What the header
/// said (<see cref="HeaderFlags"/>, <see cref="Offload"/>, <see cref="Hash"/>) is kept by the queue with the buffer
/// while it is lent, as an mbuf keeps it; after <see cref="VirtioNetReceiveQueue.ReleaseBurst"/> a handle describes a
/// buffer that is the device's again, and none of its properties may be relied on.
/// </remarks>
public readonly struct ReceivedPacket
{
    // The queue that lent the buffer; null for a default handle.
    private readonly VirtioNetReceiveQueue? _queue;

    // The slot in bits 0-15 (a queue has at most 32768 slots), the segment count in bits 16-31 (0 on continuations).
    private readonly uint _slotAndSegments;

    internal ReceivedPacket(VirtioNetReceiveQueue queue, int slot, int length, int segmentCount)
    {
        _queue = queue;
        _slotAndSegments = (uint)slot | ((uint)segmentCount << 16);
        Length = length;
    }

    /// <summary>The frame bytes in this buffer (the Ethernet header onwards for the first segment).</summary>
    public Span<byte> Span => _queue is null ? [] : _queue.SegmentRegion(Slot, IsContinuation, Length).Span;

    /// <summary>The bytes as DMA memory (device address included), for forwarding without a copy.</summary>
    public DmaRegion Data => _queue is null ? default : _queue.SegmentRegion(Slot, IsContinuation, Length);

    /// <summary>The length of this segment.</summary>
    public int Length { get; }

    /// <summary>How many buffers the packet spans; 1 for most packets, 0 on continuation entries.</summary>
    public int SegmentCount => (int)(_slotAndSegments >> 16);

    /// <summary>True for the second and later buffers of a multi-buffer packet.</summary>
    public bool IsContinuation => _slotAndSegments >> 16 == 0 && _queue is not null;

    /// <summary>The virtio_net_hdr flags the device wrote (NEEDS_CSUM, DATA_VALID), for the first segment.</summary>
    public byte HeaderFlags => _queue is null || IsContinuation ? (byte)0 : _queue.HeaderFlagsOf(Slot);

    /// <summary>
    /// On the first segment: the checksum state (<see cref="ReceivedChecksumState.Partial"/> with where, unless the
    /// caller asked the driver to complete it), the GSO type and size of a coalesced frame larger than the MTU, and with
    /// RSC_EXT the segments and duplicated ACKs coalesced; checked against the negotiated features and the frame before
    /// the packet was handed out. Default on continuation entries. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public ReceivedFrameInfo Offload => _queue is null || IsContinuation ? default : _queue.FrameInfoOf(Slot);

    /// <summary>
    /// On the first segment with VIRTIO_NET_F_HASH_REPORT: hash_value and hash_report; none otherwise.
    /// Ref: virtio v1.2 §5.1.6.4.3.4.
    /// </summary>
    public ReceiveHash Hash => _queue is null || IsContinuation ? default : _queue.HashOf(Slot);

    // The receive slot, so release can repost it.
    internal int Slot => (int)(_slotAndSegments & 0xFFFF);

    // The queue that lent it (null for a default handle).
    internal VirtioNetReceiveQueue? Queue => _queue;
}
