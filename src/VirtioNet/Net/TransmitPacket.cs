using VirtioNet.Net.Offloads;
using VirtioNet.Platform;

namespace VirtioNet.Net;

/// <summary>
/// A transmit buffer lent to the caller by <see cref="VirtioNetTransmitQueue.AllocateBurst"/>: the caller writes a frame
/// into <see cref="Span"/>, sets its length with <see cref="WithLength"/>, and hands it to
/// <see cref="VirtioNetTransmitQueue.TransmitBurst(ReadOnlySpan{TransmitPacket}, out TransmitBurstStatus)"/>. The buffer lives in DMA memory right behind its virtio_net_hdr,
/// so the device reads the frame where the caller wrote it: no copy.
/// </summary>
public readonly struct TransmitPacket
{
    internal TransmitPacket(int slot, DmaRegion room, int length, TransmitOffloadRequest offload = default)
    {
        Slot = slot;
        Room = room;
        Length = length;
        Offload = offload;
    }

    /// <summary>
    /// The whole buffer the frame may fill: MaxFrameLength bytes from <see cref="VirtioNetTransmitQueue.AllocateBurst"/>,
    /// <see cref="VirtioNetTransmitQueue.MaxSegmentFrameLength"/> from <see cref="VirtioNetTransmitQueue.AllocateLargeBurst"/>.
    /// </summary>
    public Span<byte> Span => Room.Span;

    /// <summary>The frame length to send; 0 until set.</summary>
    public int Length { get; }

    // The buffer, without the header before it.
    internal DmaRegion Room { get; }

    // The transmit slot it belongs to.
    internal int Slot { get; }

    /// <summary>The checksum and segmentation the caller asks of the device for this frame; none by default.</summary>
    public TransmitOffloadRequest Offload { get; }

    /// <summary>This buffer with the frame length set (14 to MaxFrameLength, checked at transmit).</summary>
    public TransmitPacket WithLength(int length) => new(Slot, Room, length, Offload);

    /// <summary>
    /// This buffer with an offload request: the TCP/UDP checksum, and for a frame whose payload exceeds
    /// <see cref="TransmitOffloadRequest.SegmentSize"/>, segmentation by the device (TSO/USO). Checked and applied by
    /// <see cref="VirtioNetTransmitQueue.TransmitBurst(ReadOnlySpan{TransmitPacket}, out TransmitBurstStatus)"/>.
    /// </summary>
    public TransmitPacket WithOffload(TransmitOffloadRequest request) => new(Slot, Room, Length, request);
}
