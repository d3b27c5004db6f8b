using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The receive half: buffer geometry per receive mode, refill, and frame delivery.
// The receive mode is dispatched in exactly two places: PostReceiveBuffer (refill) and TryReceive (receive).
public sealed partial class VirtioNetDevice
{
    // A page, the unit a big-mode chain is built of (Linux builds it of pages too, so the device sees the same shape).
    private const int BigModePageLength = 4096;

    // receiveq1.
    private IVirtqueue? _rxq;

    // All receive buffers in one DMA block: slot i at i * _rxSlotLength; the slot index is the queue token.
    private DmaRegion _rxPool;

    // Bytes per receive slot: the header plus what the mode lets the device write after it.
    private int _rxSlotLength;

    // Number of receive slots.
    private int _rxSlotCount;

    // Slots not posted to the device (only non-empty if a refill found the ring full).
    private int[] _rxFreeSlots = [];

    // How many entries of _rxFreeSlots are valid.
    private int _rxFreeCount;

    // Scratch chain, sized for the longest chain the mode builds, so refill never allocates.
    private VirtqBuffer[] _rxChain = [];

    // True when a legacy device without ANY_LAYOUT needs the header in its own descriptor.
    private bool _headerInOwnDescriptor;

    private void SetUpReceiveQueue()
    {
        int size = QueueSizeFor(ReceiveQueueIndex, "receiveq1");
        int descriptorsPerBuffer;
        switch (ReceiveMode)
        {
            case ReceiveMode.Mergeable:
                // §5.1.6.3.1: each mergeable buffer is one descriptor, at least the header long; a 1536-byte buffer
                // (Linux's GOOD_PACKET_LEN rounded) holds a standard frame whole, larger ones span several.
                _rxSlotLength = AlignUp(HeaderLength + EthernetFrame.HeaderLength + EthernetFrame.VlanTagLength + EthernetFrame.DefaultMtu, 64);
                descriptorsPerBuffer = 1;
                break;
            case ReceiveMode.Big:
                // §5.1.6.3.1: without MRG_RXBUF every buffer must hold the largest packet the device may send.
                int pages = (MaxReceiveFrameLength + BigModePageLength - 1) / BigModePageLength;
                _rxSlotLength = HeaderLength + (pages * BigModePageLength);
                descriptorsPerBuffer = 1 + pages;
                break;
            default:
                _rxSlotLength = AlignUp(HeaderLength + MaxReceiveFrameLength, 64);
                descriptorsPerBuffer = _headerInOwnDescriptor ? 2 : 1;
                break;
        }

        bool indirect = (NegotiatedFeatures & VirtioFeatures.IndirectDesc) != 0 && descriptorsPerBuffer > 1;
        _rxSlotCount = indirect ? size : Math.Max(1, size / descriptorsPerBuffer);
        _rxChain = new VirtqBuffer[descriptorsPerBuffer];
        _rxq = CreateQueue(ReceiveQueueIndex, size, descriptorsPerBuffer);
        _rxPool = _dma.Allocate(checked(_rxSlotCount * _rxSlotLength), 64);
        _rxFreeSlots = new int[_rxSlotCount];
        for (int i = 0; i < _rxSlotCount; i++)
        {
            _rxFreeSlots[_rxFreeCount++] = _rxSlotCount - 1 - i;
        }
    }

    // Posts every slot the driver holds. Does not notify; the caller kicks once per batch.
    private void Refill()
    {
        while (_rxFreeCount > 0)
        {
            int slot = _rxFreeSlots[_rxFreeCount - 1];
            if (!PostReceiveBuffer(slot))
            {
                return;
            }

            _rxFreeCount--;
        }
    }

    // Refill dispatch point: builds the mode's chain for one slot.
    private bool PostReceiveBuffer(int slot)
    {
        ulong address = _rxPool.DeviceAddress + (ulong)(slot * _rxSlotLength);
        int count;
        switch (ReceiveMode)
        {
            case ReceiveMode.Big:
                _rxChain[0] = new VirtqBuffer(address, (uint)HeaderLength, DeviceWritable: true);
                count = 1;
                for (int offset = HeaderLength; offset < _rxSlotLength; offset += BigModePageLength)
                {
                    _rxChain[count++] = new VirtqBuffer(address + (ulong)offset, (uint)Math.Min(BigModePageLength, _rxSlotLength - offset), DeviceWritable: true);
                }

                break;
            case ReceiveMode.Small when _headerInOwnDescriptor:
                _rxChain[0] = new VirtqBuffer(address, (uint)HeaderLength, DeviceWritable: true);
                _rxChain[1] = new VirtqBuffer(address + (ulong)HeaderLength, (uint)(_rxSlotLength - HeaderLength), DeviceWritable: true);
                count = 2;
                break;
            default:
                _rxChain[0] = new VirtqBuffer(address, (uint)_rxSlotLength, DeviceWritable: true);
                count = 1;
                break;
        }

        return _rxq!.TryAdd(_rxChain.AsSpan(0, count), slot);
    }

    private void Repost(int slot)
    {
        _rxFreeSlots[_rxFreeCount++] = slot;
    }

    private void RefillAndKick()
    {
        Refill();
        if (_rxq!.KickPrepare())
        {
            Notify(ReceiveQueueIndex, ReceiveStatistics);
        }
    }

    /// <summary>
    /// Copies the next received frame (Ethernet header onwards, without the virtio_net_hdr) into
    /// <paramref name="destination"/>. Returns false when no frame is waiting. Malformed frames are counted in
    /// <see cref="VirtioNetQueueStatistics.Errors"/> and skipped; buffers are reposted before this returns.
    /// </summary>
    /// <param name="destination">At least <see cref="MaxReceiveFrameLength"/> bytes.</param>
    /// <param name="length">The frame's length.</param>
    public bool TryReceive(Span<byte> destination, out int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (destination.Length < MaxReceiveFrameLength)
        {
            throw new ArgumentException($"The destination must hold {MaxReceiveFrameLength} bytes (MaxReceiveFrameLength); it has {destination.Length}.", nameof(destination));
        }

        try
        {
            while (_rxq!.TryTakeUsed(out UsedBuffer used))
            {
                // Receive dispatch point.
                length = ReceiveMode == ReceiveMode.Mergeable ? ReceiveMergeable(used, destination) : ReceiveWhole(used, destination);
                if (length > 0)
                {
                    ReceiveStatistics.AddPacket(length);
                    return true;
                }
            }
        }
        finally
        {
            RefillAndKick();
        }

        length = 0;
        return false;
    }

    // Small and big modes: one chain holds one packet, header first.
    private int ReceiveWhole(UsedBuffer used, Span<byte> destination)
    {
        int slot = used.Token;
        Repost(slot);
        int frameLength = used.Length - HeaderLength;
        if (frameLength < EthernetFrame.HeaderLength || frameLength > MaxReceiveFrameLength)
        {
            // §5.1.6.4.1 leaves such lengths to the driver: a runt or an oversize frame is the device's error.
            ReceiveStatistics.AddError();
            return 0;
        }

        _rxPool.Span.Slice((slot * _rxSlotLength) + HeaderLength, frameLength).CopyTo(destination);
        return frameLength;
    }

    // Mergeable mode: the first buffer's header says how many buffers the packet spans (§5.1.6.4).
    private int ReceiveMergeable(UsedBuffer first, Span<byte> destination)
    {
        Span<byte> pool = _rxPool.Span;
        int slot = first.Token;
        Repost(slot);
        if (first.Length < HeaderLength)
        {
            ReceiveStatistics.AddError();
            return 0;
        }

        int slotStart = slot * _rxSlotLength;
        int numBuffers = pool[slotStart + VirtioNetHeader.NumBuffersOffset] | (pool[slotStart + VirtioNetHeader.NumBuffersOffset + 1] << 8);
        bool ok = numBuffers >= 1 && numBuffers <= _rxSlotCount;
        int total = first.Length - HeaderLength;
        if (ok && total <= destination.Length)
        {
            pool.Slice(slotStart + HeaderLength, total).CopyTo(destination);
        }

        // Take every further buffer the packet claims, even when dropping it, so the next packet starts in step.
        for (int i = 1; i < numBuffers && i < _rxSlotCount; i++)
        {
            if (!_rxq!.TryTakeUsed(out UsedBuffer next))
            {
                // The device published fewer buffers than num_buffers promised (it must publish them together).
                ok = false;
                break;
            }

            Repost(next.Token);
            if (ok && total + next.Length <= destination.Length)
            {
                pool.Slice(next.Token * _rxSlotLength, next.Length).CopyTo(destination[total..]);
            }

            total += next.Length;
        }

        if (!ok || total < EthernetFrame.HeaderLength || total > MaxReceiveFrameLength)
        {
            ReceiveStatistics.AddError();
            return 0;
        }

        return total;
    }

    private static int AlignUp(int value, int alignment) => (value + alignment - 1) & ~(alignment - 1);
}
