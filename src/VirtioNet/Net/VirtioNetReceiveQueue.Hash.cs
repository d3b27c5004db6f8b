using VirtioNet.Net.MultiQueue;

namespace VirtioNet.Net;

// Hash reporting on receive (VIRTIO_NET_F_HASH_REPORT): hash_value and hash_report beside each frame.
public sealed partial class VirtioNetReceiveQueue
{
    // The hash of the frame TryReceive delivered last, captured before its buffer was reposted (afterwards the device
    // may already be writing the next packet's header over it).
    private ReceiveHash _lastHash;

    /// <summary>
    /// Like <see cref="TryReceive(Span{byte}, out int)"/>, and reports the hash the device computed for the frame
    /// (<see cref="ReceiveHash.Report"/> is <see cref="HashReportType.None"/> without HASH_REPORT, or when no enabled
    /// hash type applied). Ref: virtio v1.2 §5.1.6.4.3.4.
    /// </summary>
    /// <param name="destination">At least <see cref="MaxFrameLength"/> bytes.</param>
    /// <param name="length">The frame's length.</param>
    /// <param name="hash">hash_value and hash_report of the frame.</param>
    public bool TryReceive(Span<byte> destination, out int length, out ReceiveHash hash)
    {
        _lastHash = default;
        bool received = TryReceive(destination, out length);
        hash = received ? _lastHash : default;
        return received;
    }

    /// <summary>
    /// The hash the device reported for a packet from <see cref="ReceiveBurst(Span{ReceivedPacket}, ReceiveBurstOptions)"/>, read from its header, which stays
    /// intact until the buffer is released. None for continuation entries and without HASH_REPORT.
    /// </summary>
    public ReceiveHash GetHash(in ReceivedPacket packet)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (packet.IsContinuation || !_hashReported || (uint)packet.Slot >= (uint)_slotCount)
        {
            return default;
        }

        return ReceiveHash.Read(_pool.Span.Slice(packet.Slot * _slotLength, _headerLength));
    }

    // Called by the receive paths while the packet's first buffer still holds its header.
    private void CaptureHash(int slotStart)
    {
        if (_hashReported)
        {
            _lastHash = ReceiveHash.Read(_pool.Span.Slice(slotStart, _headerLength));
        }
    }
}
