using VirtioNet.Platform;

namespace VirtioNet.Net;

/// <summary>
/// One buffer of a received packet, handed out by <see cref="VirtioNetReceiveQueue.ReceiveBurst"/> without copying: the
/// frame bytes stay in the receive buffer the device wrote, until the caller gives the buffer back with
/// <see cref="VirtioNetReceiveQueue.ReleaseBurst"/>. A packet that spans several mergeable buffers arrives as
/// consecutive entries: the first with <see cref="SegmentCount"/> &gt; 1, the rest with <see cref="IsContinuation"/> set,
/// the way an mbuf chain carries a jumbo frame in DPDK.
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

    // The receive slot, so release can repost it.
    internal int Slot { get; }
}
