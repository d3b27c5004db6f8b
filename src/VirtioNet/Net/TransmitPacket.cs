using VirtioNet.Platform;

namespace VirtioNet.Net;

/// <summary>
/// A transmit buffer lent to the caller by <see cref="VirtioNetTransmitQueue.AllocateBurst"/>: the caller writes a frame
/// into <see cref="Span"/>, sets its length with <see cref="WithLength"/>, and hands it to
/// <see cref="VirtioNetTransmitQueue.TransmitBurst"/>. The buffer lives in DMA memory right behind its virtio_net_hdr,
/// so the device reads the frame where the caller wrote it: no copy.
/// </summary>
public readonly struct TransmitPacket
{
    internal TransmitPacket(int slot, DmaRegion room, int length)
    {
        Slot = slot;
        Room = room;
        Length = length;
    }

    /// <summary>The whole buffer the frame may fill (MaxFrameLength bytes).</summary>
    public Span<byte> Span => Room.Span;

    /// <summary>The frame length to send; 0 until set.</summary>
    public int Length { get; }

    // The buffer, without the header before it.
    internal DmaRegion Room { get; }

    // The transmit slot it belongs to.
    internal int Slot { get; }

    /// <summary>This buffer with the frame length set (14 to MaxFrameLength, checked at transmit).</summary>
    public TransmitPacket WithLength(int length) => new(Slot, Room, length);
}
