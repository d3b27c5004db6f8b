using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The transmit half: a pool of slots in DMA memory, each a header followed by room for one frame.
public sealed partial class VirtioNetDevice
{
    // transmitq1.
    private IVirtqueue? _txq;

    // All transmit slots in one DMA block: slot i at i * _txSlotLength; the slot index is the queue token.
    private DmaRegion _txPool;

    // Bytes per transmit slot.
    private int _txSlotLength;

    // Free transmit slots, a stack.
    private int[] _txFreeSlots = [];

    // How many entries of _txFreeSlots are valid.
    private int _txFreeCount;

    // Scratch chain for one packet: header and data, or both in one.
    private readonly VirtqBuffer[] _txChain = new VirtqBuffer[2];

    private void SetUpTransmitQueue()
    {
        int size = QueueSizeFor(TransmitQueueIndex, "transmitq1");
        int descriptorsPerPacket = _headerInOwnDescriptor ? 2 : 1;
        bool indirect = (NegotiatedFeatures & VirtioFeatures.IndirectDesc) != 0;
        int slots = indirect || descriptorsPerPacket == 1 ? size : size / descriptorsPerPacket;
        _txSlotLength = AlignUp(HeaderLength + MaxTransmitFrameLength, 64);
        _txq = CreateQueue(TransmitQueueIndex, size, descriptorsPerPacket);
        _txPool = _dma.Allocate(checked(slots * _txSlotLength), 64);
        _txFreeSlots = new int[slots];
        for (int i = 0; i < slots; i++)
        {
            _txFreeSlots[_txFreeCount++] = slots - 1 - i;
        }
    }

    /// <summary>Transmit slots free right now (after the last reclaim).</summary>
    public int TransmitSlotsFree => _txFreeCount;

    /// <summary>
    /// Copies <paramref name="frame"/> (Ethernet header onwards, no FCS) into a transmit buffer behind a zeroed
    /// virtio_net_hdr (no offload requested) and hands it to the device. Returns false when every transmit buffer
    /// is still held by the device (back-pressure: try again after it completes some).
    /// </summary>
    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (frame.Length < EthernetFrame.HeaderLength || frame.Length > MaxTransmitFrameLength)
        {
            throw new ArgumentException($"A frame must be {EthernetFrame.HeaderLength} to {MaxTransmitFrameLength} bytes long; this one has {frame.Length}.", nameof(frame));
        }

        ReclaimTransmitted();
        if (_txFreeCount == 0)
        {
            return false;
        }

        int slot = _txFreeSlots[--_txFreeCount];
        int start = slot * _txSlotLength;
        Span<byte> buffer = _txPool.Span.Slice(start, HeaderLength + frame.Length);

        // §5.1.6.2: flags 0 and gso_type VIRTIO_NET_HDR_GSO_NONE: a complete frame with its checksums in place.
        buffer[..HeaderLength].Clear();
        frame.CopyTo(buffer[HeaderLength..]);

        ulong address = _txPool.DeviceAddress + (ulong)start;
        int count;
        if (_headerInOwnDescriptor)
        {
            _txChain[0] = new VirtqBuffer(address, (uint)HeaderLength, DeviceWritable: false);
            _txChain[1] = new VirtqBuffer(address + (ulong)HeaderLength, (uint)frame.Length, DeviceWritable: false);
            count = 2;
        }
        else
        {
            _txChain[0] = new VirtqBuffer(address, (uint)(HeaderLength + frame.Length), DeviceWritable: false);
            count = 1;
        }

        if (!_txq!.TryAdd(_txChain.AsSpan(0, count), slot))
        {
            _txFreeSlots[_txFreeCount++] = slot;
            return false;
        }

        if (_txq.KickPrepare())
        {
            Notify(TransmitQueueIndex, TransmitStatistics);
        }

        TransmitStatistics.AddPacket(frame.Length);
        return true;
    }

    /// <summary>Takes back every transmit buffer the device has finished with. Returns how many.</summary>
    public int ReclaimTransmitted()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int reclaimed = 0;
        while (_txq!.TryTakeUsed(out UsedBuffer used))
        {
            _txFreeSlots[_txFreeCount++] = used.Token;
            reclaimed++;
        }

        return reclaimed;
    }
}
