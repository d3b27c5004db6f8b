using VirtioNet.Core;
using VirtioNet.Net.Offloads;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// One receive queue (receiveqN): its buffers in DMA memory, refill, and frame delivery. The receive mode is dispatched
/// in exactly two places: <see cref="PostBuffer"/> (refill) and <see cref="TryReceive(Span{byte}, out int)"/> (receive).
/// Not thread-safe: one worker owns a queue at a time. Ref: virtio v1.2 §5.1.6.3, §5.1.6.4.
/// </summary>
internal sealed partial class VirtioNetReceiveQueue : IDisposable
{
    // A page, the unit a big-mode chain is built of (Linux builds it of pages too, so the device sees the same shape).
    private const int BigModePageLength = 4096;

    // The ring itself.
    private readonly IVirtqueue _queue;

    // Where _pool came from, to give it back.
    private readonly IDmaAllocator _dma;

    // Sends the available-buffer notification (the transport's, counted in the statistics).
    private readonly Action<int> _notify;

    // All receive buffers in one DMA block: slot i's buffer at BufferStart(i); the slot index is the queue token.
    private readonly DmaRegion _pool;

    // Bytes of each buffer the device may write: the header plus what the mode lets the device write after it.
    private readonly int _slotLength;

    // From one slot to the next in _pool: the headroom and the buffer, rounded up to a cache line.
    private readonly int _slotStride;

    // Bytes before each buffer, so that the header ends and the frame starts on a cache line. A device copying a frame
    // in then writes it to an aligned destination; 12 bytes off a line, DPDK's vhost copy takes its shifted path
    // (SSSE3 palignr) and receive at 1,514 bytes ran at under half the rate (docs/PERFORMANCE.md, "Aligned receive
    // buffers"). DPDK's own driver gets the same by putting the header in the mbuf's headroom. None in big mode, whose
    // pages stay page-sized. The transmit side keeps its header at the slot's start: there the driver writes the frame's
    // first bytes, and a short frame then shares one line with its header.
    private readonly int _headroom;

    // Number of slots.
    private readonly int _slotCount;

    // The virtio_net_hdr length in use.
    private readonly int _headerLength;

    // True when a legacy device without ANY_LAYOUT needs the header in its own descriptor.
    private readonly bool _headerInOwnDescriptor;

    // Slots not posted to the device, first in first out (a ring of _slotCount entries from _freeFirst); reposted by
    // the next refill in the order they came back, so that with IN_ORDER slot i keeps going to descriptor i and the
    // ring's fixed-slot stores stay skipped (SplitVirtqueue.TryAddOne).
    private readonly int[] _freeSlots;

    // Where the oldest free slot is in _freeSlots.
    private int _freeFirst;

    // How many entries of _freeSlots are valid.
    private int _freeCount;

    // Scratch chain, sized for the longest chain the mode builds, so refill never allocates.
    private readonly VirtqBuffer[] _chain;

    // Set once disposed.
    private bool _disposed;

    // Who is inside the queue: its one worker, or the device's recovery (QueueGate).
    private readonly QueueGate _gate;

    // Segments of a multi-buffer packet taken by ReceiveBurst that did not fit the caller's span; handed out next call.
    private readonly ReceivedPacket[] _pending;

    // How many entries of _pending are valid.
    private int _pendingCount;

    internal VirtioNetReceiveQueue(
        int queueIndex, int size, ReceiveMode mode, int headerLength, int maxFrameLength, bool headerInOwnDescriptor,
        bool indirect, IDmaAllocator dma, Func<int, int, int, IVirtqueue> createQueue, Action<int> notify)
    {
        Mode = mode;
        MaxFrameLength = maxFrameLength;
        _headerLength = headerLength;
        _headerInOwnDescriptor = headerInOwnDescriptor;
        _dma = dma;
        _notify = notify;
        Statistics = new VirtioNetQueueStatistics($"receiveq{(queueIndex / 2) + 1}");
        _gate = new QueueGate(Statistics.Name);

        int descriptorsPerBuffer;
        switch (mode)
        {
            case ReceiveMode.Mergeable:
                // §5.1.6.3.1: each mergeable buffer is one descriptor, at least the header long; a 1536-byte buffer
                // (Linux's GOOD_PACKET_LEN rounded) holds a standard frame whole, larger ones span several.
                _slotLength = QueueSlots.ToCacheLines(headerLength + EthernetFrame.HeaderLength + EthernetFrame.VlanTagLength + EthernetFrame.DefaultMtu);
                descriptorsPerBuffer = 1;
                break;
            case ReceiveMode.Big:
                // §5.1.6.3.1: without MRG_RXBUF every buffer must hold the largest packet the device may send.
                int pages = (maxFrameLength + BigModePageLength - 1) / BigModePageLength;
                _slotLength = headerLength + (pages * BigModePageLength);
                descriptorsPerBuffer = 1 + pages;
                break;
            default:
                _slotLength = QueueSlots.ToCacheLines(headerLength + maxFrameLength);
                descriptorsPerBuffer = headerInOwnDescriptor ? 2 : 1;
                break;
        }

        _headroom = mode == ReceiveMode.Big ? 0 : QueueSlots.ToCacheLines(headerLength) - headerLength;
        _slotStride = QueueSlots.ToCacheLines(_headroom + _slotLength);
        _slotCount = indirect && descriptorsPerBuffer > 1 ? size : Math.Max(1, size / descriptorsPerBuffer);
        _chain = new VirtqBuffer[descriptorsPerBuffer];
        _queue = createQueue(queueIndex, size, descriptorsPerBuffer);
        _pool = QueueSlots.Allocate(_queue, dma, _slotCount, _slotStride);
        _pending = new ReceivedPacket[_slotCount];
        _freeSlots = Enumerable.Range(0, _slotCount).ToArray();
        _freeCount = _slotCount;

        InitializeBurst(dma);
    }

    /// <summary>The queue's index on the device (0, 2, 4, ...).</summary>
    public int QueueIndex => _queue.QueueIndex;

    /// <summary>The receive mode, chosen once from the negotiated features.</summary>
    public ReceiveMode Mode { get; }

    /// <summary>The largest frame <see cref="TryReceive(Span{byte}, out int)"/> delivers; destinations must be at least this long.</summary>
    public int MaxFrameLength { get; }

    /// <summary>Buffers this queue posts (the most frames that can wait in it).</summary>
    public int BufferCount => _slotCount;

    /// <summary>This queue's counters.</summary>
    public VirtioNetQueueStatistics Statistics { get; }

    /// <summary>True when the device has returned buffers not yet taken.</summary>
    public bool HasPending => _takenNext < _takenCount || _queue.HasUsed;

    internal IVirtqueue Queue => _queue;

    /// <summary>
    /// Copies the next received frame (Ethernet header onwards, without the virtio_net_hdr) into
    /// <paramref name="destination"/>. Returns false when no frame is waiting. Malformed frames are counted in
    /// <see cref="VirtioNetQueueStatistics.Errors"/> and skipped; buffers are reposted before this returns.
    /// </summary>
    /// <param name="destination">At least <see cref="MaxFrameLength"/> bytes.</param>
    /// <param name="length">The frame's length.</param>
    public bool TryReceive(Span<byte> destination, out int length)
    {
        bool received = TryReceive(destination, stripVlanTag: false, out ReceivedFrame frame);
        length = frame.Length;
        return received;
    }

    /// <summary>
    /// Copies the next received frame into <paramref name="destination"/> and describes it in <paramref name="frame"/>:
    /// what its header said is read while its first buffer is still the driver's (before the refill reposts it), checked
    /// against the negotiated offloads (a partial checksum is completed in place, DATA_VALID re-checked unless turned
    /// off), and the outermost 802.1Q tag is reported, and removed when <paramref name="stripVlanTag"/>. Headers that
    /// contradict the negotiated features or the frame are counted in <see cref="VirtioNetQueueStatistics.Errors"/> and
    /// their packets dropped. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public bool TryReceive(Span<byte> destination, bool stripVlanTag, out ReceivedFrame frame)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (destination.Length < MaxFrameLength)
        {
            throw new ArgumentException($"The destination must hold {MaxFrameLength} bytes (MaxFrameLength); it has {destination.Length}.", nameof(destination));
        }

        bool entered = _gate.Enter();
        try
        {
            while (TryTakeUsed(out UsedBuffer used))
            {
                // Receive dispatch point.
                int headerStart;
                int length = Mode == ReceiveMode.Mergeable ? ReceiveMergeable(used, destination, out headerStart) : ReceiveWhole(used, destination, out headerStart);
                ReceivedFrameInfo info = default;
                if (length > 0 && !CheckOffloads(headerStart, destination[..length], out info))
                {
                    // A header that contradicts the negotiated offloads or the frame (VirtioNetReceiveQueue.Offload.cs).
                    Statistics.AddError();
                    length = 0;
                }

                if (length > 0)
                {
                    Statistics.AddPacket(length);
                    if (info.Checksum != ReceivedChecksumState.None || info.IsGso)
                    {
                        BurstTally tally = default;
                        tally.Count(info);
                        Statistics.Add(ref tally);
                    }

                    if (info.CoalescedSegments > 0)
                    {
                        Statistics.AddCoalescedSegments(info.CoalescedSegments);
                    }

                    frame = Describe(destination, length, headerStart, info, stripVlanTag);
                    return true;
                }
            }
        }
        finally
        {
            RefillAndKickIfUsable();
            _gate.Exit(entered);
        }

        frame = default;
        return false;
    }

    /// <summary>Posts every buffer the driver holds, without notifying (the caller kicks once per batch).</summary>
    internal void Refill()
    {
        if (Mode == ReceiveMode.Mergeable || (Mode == ReceiveMode.Small && !_headerInOwnDescriptor))
        {
            // One descriptor per buffer: the free slots go back in one call per contiguous run of _freeSlots (at most
            // two), which on the fixed-slot path is an index bump (IVirtqueue.TryAddWritableSlots).
            RefillSlots();
            return;
        }

        while (_freeCount > 0)
        {
            if (!PostBuffer(_freeSlots[_freeFirst]))
            {
                return;
            }

            _freeFirst = _freeFirst + 1 == _slotCount ? 0 : _freeFirst + 1;
            _freeCount--;
        }
    }

    // Refill for the one-descriptor modes (the default case of PostBuffer, as one call per run of free slots).
    private void RefillSlots()
    {
        while (_freeCount > 0)
        {
            int run = Math.Min(_freeCount, _slotCount - _freeFirst);
            int added = _queue.TryAddWritableSlots(_freeSlots.AsSpan(_freeFirst, run), _pool.DeviceAddress + (ulong)_headroom, _slotStride, (uint)_slotLength);
            _freeFirst = _freeFirst + added == _slotCount ? 0 : _freeFirst + added;
            _freeCount -= added;
            if (added < run)
            {
                return;
            }
        }
    }

    /// <summary>Refills, then notifies the device if it asked to be told.</summary>
    internal void RefillAndKick()
    {
        Refill();
        if (_queue.KickPrepare())
        {
            _notify(_queue.QueueIndex);
            Statistics.AddNotification();
        }
    }

    // After a receive: repost, unless the device has just broken the ring (the exception on its way out says why).
    private void RefillAndKickIfUsable()
    {
        if (!_queue.IsBroken)
        {
            RefillAndKick();
        }
    }

    /// <summary>The queue's gate: the worker inside, or the device's recovery.</summary>
    internal QueueGate Gate => _gate;

    /// <summary>
    /// Takes every posted buffer back from a queue the device has just reset alone (VIRTIO_F_RING_RESET), or after the
    /// whole device was reset (<paramref name="deviceReset"/>, which also clears a broken latch): their slots go back to
    /// the free list for the next refill. Returns how many were taken back. Not on the packet path.
    /// </summary>
    internal int ReclaimAfterQueueReset(bool deviceReset = false)
    {
        int[] tokens = new int[_queue.Outstanding];
        int count = deviceReset ? _queue.DetachAllAfterDeviceReset(tokens) : _queue.DetachAll(tokens);
        for (int i = 0; i < count; i++)
        {
            Repost(tokens[i]);
        }

        // Buffers a batch took from the ring that no receive handled yet (possible only when the device lied in the
        // middle of a batch or a multi-buffer packet did not fit the caller's span): theirs are slots too.
        while (_takenNext < _takenCount)
        {
            Repost(_taken[_takenNext++].Token);
            count++;
        }

        _takenNext = _takenCount = 0;
        return count;
    }

    /// <summary>Releases the buffers. The device must be reset first so it no longer writes them.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _queue.Dispose();
        _dma.Free(_pool);
    }

    // Refill dispatch point: builds the mode's chain for one slot.
    private bool PostBuffer(int slot)
    {
        ulong address = _pool.DeviceAddress + (ulong)BufferStart(slot);
        int count;
        switch (Mode)
        {
            case ReceiveMode.Big:
                _chain[0] = new VirtqBuffer(address, (uint)_headerLength, DeviceWritable: true);
                count = 1;
                for (int offset = _headerLength; offset < _slotLength; offset += BigModePageLength)
                {
                    _chain[count++] = new VirtqBuffer(address + (ulong)offset, (uint)Math.Min(BigModePageLength, _slotLength - offset), DeviceWritable: true);
                }

                break;
            case ReceiveMode.Small when _headerInOwnDescriptor:
                _chain[0] = new VirtqBuffer(address, (uint)_headerLength, DeviceWritable: true);
                _chain[1] = new VirtqBuffer(address + (ulong)_headerLength, (uint)(_slotLength - _headerLength), DeviceWritable: true);
                count = 2;
                break;
            default:
                return _queue.TryAddOne(address, (uint)_slotLength, deviceWritable: true, slot);
        }

        return _queue.TryAdd(_chain.AsSpan(0, count), slot);
    }

    // Where slot's buffer (its header first) starts in _pool.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private int BufferStart(int slot) => (slot * _slotStride) + _headroom;

    private void Repost(int slot)
    {
        if (_freeCount == _slotCount)
        {
            // Every slot is already free: the caller gave one buffer back twice.
            throw new InvalidOperationException($"Slot {slot} of {Statistics.Name} was given back twice.");
        }

        int at = _freeFirst + _freeCount;
        _freeSlots[at >= _slotCount ? at - _slotCount : at] = slot;
        _freeCount++;
    }

    // Takes the next used buffer and makes what the device wrote into its slot visible to the CPU before anything reads
    // it: a no-op on cache-coherent platforms, an invalidate of the used length (checked by the queue against the
    // slot's writable buffers) elsewhere. Every receive path takes buffers through here.
    private bool TryTakeUsed(out UsedBuffer used)
    {
        if (_takenNext < _takenCount)
        {
            // Taken from the ring in a batch (and synced then).
            used = _taken[_takenNext++];
            return true;
        }

        if (!_queue.TryTakeUsed(out used))
        {
            return false;
        }

        if (_syncDma)
        {
            _dma.SyncForCpu(_pool.Slice(BufferStart(used.Token), used.Length));
        }

        return true;
    }

    // Small and big modes: one chain holds one packet, header first.
    private int ReceiveWhole(UsedBuffer used, Span<byte> destination, out int headerStart)
    {
        int slot = used.Token;
        headerStart = BufferStart(slot);
        Repost(slot);
        int frameLength = used.Length - _headerLength;
        if (frameLength < EthernetFrame.HeaderLength || frameLength > MaxFrameLength)
        {
            // A runt or an oversize frame is the device's error (§5.1.6.4.1 leaves such lengths to the driver).
            Statistics.AddError();
            return 0;
        }

        _pool.Span.Slice(BufferStart(slot) + _headerLength, frameLength).CopyTo(destination);
        return frameLength;
    }

    // Mergeable mode: the first buffer's header says how many buffers the packet spans (§5.1.6.4).
    private int ReceiveMergeable(UsedBuffer first, Span<byte> destination, out int headerStart)
    {
        Span<byte> pool = _pool.Span;
        int slot = first.Token;
        headerStart = BufferStart(slot);
        Repost(slot);
        if (first.Length < _headerLength)
        {
            Statistics.AddError();
            return 0;
        }

        int numBuffers = pool[headerStart + VirtioNetHeader.NumBuffersOffset] | (pool[headerStart + VirtioNetHeader.NumBuffersOffset + 1] << 8);
        bool ok = numBuffers >= 1 && numBuffers <= _slotCount;
        int total = first.Length - _headerLength;
        if (ok && total <= destination.Length)
        {
            pool.Slice(headerStart + _headerLength, total).CopyTo(destination);
        }

        // Take every further buffer the packet claims, even when dropping it, so the next packet starts in step.
        for (int i = 1; i < numBuffers && i < _slotCount; i++)
        {
            if (!TryTakeUsed(out UsedBuffer next))
            {
                // The device published fewer buffers than num_buffers promised (it must publish them together).
                ok = false;
                break;
            }

            Repost(next.Token);
            if (ok && total + next.Length <= destination.Length)
            {
                pool.Slice(BufferStart(next.Token), next.Length).CopyTo(destination[total..]);
            }

            total += next.Length;
        }

        if (!ok || total < EthernetFrame.HeaderLength || total > MaxFrameLength)
        {
            Statistics.AddError();
            return 0;
        }

        return total;
    }
}
