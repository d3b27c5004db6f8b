using System.Runtime.CompilerServices;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Net;

/// <summary>
/// A transmit buffer lent to the caller by <see cref="VirtioNetTransmitQueue.AllocateBurst"/>: the caller writes a frame
/// into <see cref="Span"/>, sets <see cref="Length"/> in place, and hands it to
/// <see cref="VirtioNetTransmitQueue.TransmitBurst(ReadOnlySpan{TransmitPacket}, out TransmitBurstStatus)"/>. The buffer
/// lives in DMA memory right behind its virtio_net_hdr, so the device reads the frame where the caller wrote it: no copy.
/// </summary>
/// <remarks>
/// A handle of 16 bytes (the queue, the slot and the length), meant to be used in place: <c>ref TransmitPacket p =
/// ref packets[i]; p.Length = n;</c>. The offload request belongs to the buffer, not to the handle (as an mbuf's
/// ol_flags belong to the mbuf): it is kept by the queue for the slot until the buffer is sent or freed, so every copy
/// of a handle sees the same request.
/// </remarks>
public struct TransmitPacket
{
    // The queue that lent the buffer; null for a default handle, which no queue accepts.
    private readonly VirtioNetTransmitQueue? _queue;

    internal TransmitPacket(VirtioNetTransmitQueue queue, int slot)
    {
        _queue = queue;
        Slot = slot;
    }

    /// <summary>
    /// The whole buffer the frame may fill: MaxFrameLength bytes from <see cref="VirtioNetTransmitQueue.AllocateBurst"/>,
    /// <see cref="VirtioNetTransmitQueue.MaxSegmentFrameLength"/> from <see cref="VirtioNetTransmitQueue.AllocateLargeBurst"/>.
    /// Empty for a default handle.
    /// </summary>
    public readonly Span<byte> Span => _queue is null ? [] : _queue.BufferSpan(Slot);

    /// <summary>The frame length to send (14 to MaxFrameLength, checked at transmit); 0 until set.</summary>
    public int Length { readonly get; set; }

    /// <summary>
    /// The checksum and segmentation the caller asks of the device for this frame; none by default. Kept with the
    /// buffer until it is sent or freed (see the remarks of <see cref="TransmitPacket"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Set on a default handle, which names no buffer.</exception>
    public readonly TransmitOffloadRequest Offload
    {
        get => _queue is null ? default : _queue.GetOffload(Slot);
        set => (_queue ?? throw new InvalidOperationException("A default TransmitPacket names no buffer; take one from AllocateBurst.")).SetOffload(Slot, value);
    }

    // The transmit slot it belongs to.
    internal readonly int Slot { get; }

    // The queue that lent it (null for a default handle).
    internal readonly VirtioNetTransmitQueue? Queue => _queue;

    /// <summary>A copy of this handle with the frame length set; <c>p.Length = n</c> sets it in place instead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly TransmitPacket WithLength(int length)
    {
        TransmitPacket copy = this;
        copy.Length = length;
        return copy;
    }

    /// <summary>
    /// Sets the buffer's offload request (as <see cref="Offload"/> does) and returns this handle: the TCP/UDP checksum,
    /// and for a frame whose payload exceeds <see cref="TransmitOffloadRequest.SegmentSize"/>, segmentation by the
    /// device (TSO/USO). Checked and applied by
    /// <see cref="VirtioNetTransmitQueue.TransmitBurst(ReadOnlySpan{TransmitPacket}, out TransmitBurstStatus)"/>.
    /// </summary>
    public readonly TransmitPacket WithOffload(TransmitOffloadRequest request)
    {
        Offload = request;
        return this;
    }
}
