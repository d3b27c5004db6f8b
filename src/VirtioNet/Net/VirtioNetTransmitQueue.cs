using VirtioNet.Net.Vlan;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// One transmit queue (transmitqN): a pool of slots in DMA memory, each a virtio_net_hdr followed by room for one frame,
/// and the reclaim of completed slots. Not thread-safe: one worker owns a queue at a time. Ref: virtio v1.2 §5.1.6.2.
/// </summary>
internal sealed partial class VirtioNetTransmitQueue : IDisposable
{
    // The ring itself.
    private readonly IVirtqueue _queue;

    // Where _pool came from, to give it back.
    private readonly IDmaAllocator _dma;

    // Sends the available-buffer notification.
    private readonly Action<int> _notify;

    // All slots in one DMA block: slot i at i * _slotLength, the header first; the slot index is the queue token. Unlike
    // the receive buffers, no headroom aligns the frame: a short frame's headers share the header's cache line, one line
    // for the driver to write and the device to read (a headroom made transmit at 64 bytes about 10% slower).
    private readonly DmaRegion _pool;

    // Bytes per slot.
    private readonly int _slotLength;

    // The virtio_net_hdr length in use.
    private readonly int _headerLength;

    // True when a legacy device without ANY_LAYOUT needs the header in its own descriptor.
    private readonly bool _headerInOwnDescriptor;

    // Free slots, a ring of _freeSlots.Length entries from _freeFirst: taken from the front, completed ones added at the
    // back, unsent ones put back at the front. Slots thus go to the ring in the order they came back, so that with
    // IN_ORDER slot i keeps going to descriptor i and the ring's fixed-slot stores stay skipped (SplitVirtqueue.TryAddOne).
    private readonly int[] _freeSlots;

    // Where the next free slot is in _freeSlots.
    private int _freeFirst;

    // How many entries of _freeSlots are valid.
    private int _freeCount;

    // Scratch chain for one packet: header and data, or both in one.
    private readonly VirtqBuffer[] _chain = new VirtqBuffer[2];

    // Set once disposed.
    private bool _disposed;

    // Who is inside the queue: its one worker, or the device's recovery (QueueGate).
    private readonly QueueGate _gate;

    internal VirtioNetTransmitQueue(
        int queueIndex, int size, int headerLength, int maxFrameLength, bool headerInOwnDescriptor, bool indirect,
        IDmaAllocator dma, Func<int, int, int, IVirtqueue> createQueue, Action<int> notify)
    {
        _headerLength = headerLength;
        _headerInOwnDescriptor = headerInOwnDescriptor;
        _dma = dma;
        _notify = notify;
        MaxFrameLength = maxFrameLength;
        Statistics = new VirtioNetQueueStatistics($"transmitq{(queueIndex / 2) + 1}");
        _gate = new QueueGate(Statistics.Name);

        int descriptorsPerPacket = headerInOwnDescriptor ? 2 : 1;
        int slots = indirect || descriptorsPerPacket == 1 ? size : size / descriptorsPerPacket;
        _slotLength = QueueSlots.ToCacheLines(headerLength + maxFrameLength);
        _queue = createQueue(queueIndex, size, descriptorsPerPacket);
        _pool = QueueSlots.Allocate(_queue, dma, slots, _slotLength);
        _freeSlots = Enumerable.Range(0, slots).ToArray();
        _freeCount = slots;

        InitializeBurst(dma);
    }

    /// <summary>The queue's index on the device (1, 3, 5, ...).</summary>
    public int QueueIndex => _queue.QueueIndex;

    /// <summary>The largest frame <see cref="TrySend(ReadOnlySpan{byte})"/> accepts: the MTU plus the Ethernet header and one VLAN tag.</summary>
    public int MaxFrameLength { get; }

    /// <summary>Slots free right now (after the last reclaim).</summary>
    public int SlotsFree => _freeCount;

    /// <summary>This queue's counters.</summary>
    public VirtioNetQueueStatistics Statistics { get; }

    internal IVirtqueue Queue => _queue;

    /// <summary>
    /// Copies <paramref name="frame"/> (Ethernet header onwards, no FCS) into a transmit buffer behind a zeroed
    /// virtio_net_hdr (no offload requested) and hands it to the device. Returns false when every transmit buffer
    /// is still held by the device (back-pressure: try again after it completes some).
    /// </summary>
    public bool TrySend(ReadOnlySpan<byte> frame) => TrySendCore(frame, null);

    // Copies the frame (inserting an 802.1Q tag while copying, when given) straight into a free slot and queues it.
    private bool TrySendCore(ReadOnlySpan<byte> frame, VlanTag? tag)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        return TrySendEntered(frame, tag);
    }

    private bool TrySendEntered(ReadOnlySpan<byte> frame, VlanTag? tag)
    {
        int length = frame.Length + (tag is null ? 0 : EthernetFrame.VlanTagLength);
        if (frame.Length < EthernetFrame.HeaderLength || length > MaxFrameLength)
        {
            throw new ArgumentException($"A frame must be {EthernetFrame.HeaderLength} to {MaxFrameLength} bytes long once tagged; this one has {length}.", nameof(frame));
        }

        Reclaim();
        if (_freeCount == 0)
        {
            Statistics.AddRingFull();
            return false;
        }

        int slot = TakeFreeSlot();
        Span<byte> room = _pool.Span.Slice((slot * _slotLength) + _headerLength, length);
        if (tag is { } t)
        {
            VlanFrame.InsertTag(frame, t, room);
        }
        else
        {
            frame.CopyTo(room);
        }

        if (!Enqueue(slot, length))
        {
            PutBackUnsent(slot);
            Statistics.AddRingFull();
            return false;
        }

        if (_queue.KickPrepare())
        {
            _notify(_queue.QueueIndex);
            Statistics.AddNotification();
        }

        Statistics.AddPacket(length);
        return true;
    }

    // Puts the frame already in slot behind its header and adds it to the ring (not yet visible: KickPrepare does that).
    // The header is zeroed, or the one an offload decision prepared (VirtioNetTransmitQueue.Offload.cs).
    private bool Enqueue(int slot, int frameLength, ReadOnlySpan<byte> header = default)
    {
        (DmaRegion pool, int start) = LocateSlot(slot);
        Span<byte> headerRoom = pool.Span.Slice(start, _headerLength);
        if (header.IsEmpty)
        {
            // §5.1.6.2: flags 0 and gso_type VIRTIO_NET_HDR_GSO_NONE: a complete frame with its checksums in place.
            headerRoom.Clear();
        }
        else
        {
            header.CopyTo(headerRoom);
        }

        // The header and frame written by the CPU must reach memory before the descriptor that names them is published
        // (§2.7.13.1, §2.8.21.1): a no-op on cache-coherent platforms, a clean of just these bytes elsewhere.
        if (_syncDma)
        {
            _dma.SyncForDevice(pool.Slice(start, _headerLength + frameLength));
        }

        ulong address = pool.DeviceAddress + (ulong)start;
        int count;
        if (_headerInOwnDescriptor)
        {
            _chain[0] = new VirtqBuffer(address, (uint)_headerLength, DeviceWritable: false);
            _chain[1] = new VirtqBuffer(address + (ulong)_headerLength, (uint)frameLength, DeviceWritable: false);
            count = 2;
        }
        else
        {
            _chain[0] = new VirtqBuffer(address, (uint)(_headerLength + frameLength), DeviceWritable: false);
            count = 1;
        }

        return _queue.TryAdd(_chain.AsSpan(0, count), slot);
    }

    /// <summary>Takes back every transmit buffer the device has finished with. Returns how many.</summary>
    public int Reclaim()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        return ReclaimEntered();
    }

    private int ReclaimEntered()
    {
        int reclaimed = 0;
        while (_queue.TryTakeUsed(out UsedBuffer used))
        {
            if (!TryReleaseLargeSlot(used.Token))
            {
                AddCompleted(used.Token);
            }

            reclaimed++;
        }

        NoteReclaimed(reclaimed);
        return reclaimed;
    }

    /// <summary>The queue's gate: the worker inside, or the device's recovery.</summary>
    internal QueueGate Gate => _gate;

    /// <summary>
    /// Takes every slot back from a queue the device has just reset alone (VIRTIO_F_RING_RESET), or after the whole
    /// device was reset (<paramref name="deviceReset"/>, which also clears a broken latch); the frames in them may or may
    /// not have been sent. Returns how many were taken back. Not on the packet path.
    /// </summary>
    internal int ReclaimAfterQueueReset(bool deviceReset = false)
    {
        int[] tokens = new int[_queue.Outstanding];
        int count = deviceReset ? _queue.DetachAllAfterDeviceReset(tokens) : _queue.DetachAll(tokens);
        for (int i = 0; i < count; i++)
        {
            if (!TryReleaseLargeSlot(tokens[i]))
            {
                AddCompleted(tokens[i]);
            }
        }

        return count;
    }

    // The next free ordinary slot (the caller checked that one is free).
    private int TakeFreeSlot()
    {
        int slot = _freeSlots[_freeFirst];
        _freeFirst = _freeFirst + 1 == _freeSlots.Length ? 0 : _freeFirst + 1;
        _freeCount--;
        return slot;
    }

    // A slot lent or taken but not sent: first again, so the order of slots in the ring is kept.
    private void PutBackUnsent(int slot)
    {
        CheckRoom(slot);
        _freeFirst = _freeFirst == 0 ? _freeSlots.Length - 1 : _freeFirst - 1;
        _freeSlots[_freeFirst] = slot;
        _freeCount++;
    }

    // A slot the device has finished with: last, after the ones that completed before it.
    private void AddCompleted(int slot)
    {
        CheckRoom(slot);
        int at = _freeFirst + _freeCount;
        _freeSlots[at >= _freeSlots.Length ? at - _freeSlots.Length : at] = slot;
        _freeCount++;
    }

    private void CheckRoom(int slot)
    {
        if (_freeCount == _freeSlots.Length)
        {
            // Every slot is already free: a buffer was given back twice.
            throw new InvalidOperationException($"Slot {slot} of {Statistics.Name} was given back twice.");
        }
    }

    /// <summary>Releases the buffers. The device must be reset first so it no longer reads them.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _queue.Dispose();
        _dma.Free(_pool);
        FreeLargePool();
    }
}
