using VirtioNet.Net.MultiQueue;

namespace VirtioNet.Net;

// Hash reporting on receive (VIRTIO_NET_F_HASH_REPORT): hash_value and hash_report beside each frame.
internal sealed partial class VirtioNetReceiveQueue
{
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

        return ReceiveHash.Read(_pool.Span.Slice(BufferStart(packet.Slot), _headerLength));
    }
}
