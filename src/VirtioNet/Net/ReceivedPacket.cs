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
public readonly struct ReceivedPacket
{
    internal ReceivedPacket(int slot, DmaRegion data, int segmentCount, bool isContinuation, byte headerFlags)
    {
        Slot = slot;
        Data = data;
        SegmentCount = segmentCount;
        IsContinuation = isContinuation;
        HeaderFlags = headerFlags;
    }

    internal ReceivedPacket(in ReceivedPacket first, ReceivedFrameInfo offload, ReceiveHash hash)
        : this(first.Slot, first.Data, first.SegmentCount, first.IsContinuation, first.HeaderFlags)
    {
        Offload = offload;
        Hash = hash;
    }

    /// <summary>The frame bytes in this buffer (the Ethernet header onwards for the first segment).</summary>
    public Span<byte> Span => Data.Span;

    /// <summary>The bytes as DMA memory (device address included), for forwarding without a copy.</summary>
    public DmaRegion Data { get; }

    /// <summary>The length of this segment.</summary>
    public int Length => Data.Length;

    /// <summary>How many buffers the packet spans; 1 for most packets, 0 on continuation entries.</summary>
    public int SegmentCount { get; }

    /// <summary>True for the second and later buffers of a multi-buffer packet.</summary>
    public bool IsContinuation { get; }

    /// <summary>The virtio_net_hdr flags the device wrote (NEEDS_CSUM, DATA_VALID), for the first segment.</summary>
    public byte HeaderFlags { get; }

    /// <summary>
    /// On the first segment: the checksum state (<see cref="ReceivedChecksumState.Partial"/> with where, unless the
    /// caller asked the driver to complete it), the GSO type and size of a coalesced frame larger than the MTU, and with
    /// RSC_EXT the segments and duplicated ACKs coalesced; checked against the negotiated features and the frame before
    /// the packet was handed out. Default on continuation entries. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public ReceivedFrameInfo Offload { get; }

    /// <summary>
    /// On the first segment with VIRTIO_NET_F_HASH_REPORT: hash_value and hash_report; none otherwise.
    /// Ref: virtio v1.2 §5.1.6.4.3.4.
    /// </summary>
    public ReceiveHash Hash { get; }

    // The receive slot, so release can repost it.
    internal int Slot { get; }
}
