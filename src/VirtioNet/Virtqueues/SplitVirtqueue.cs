using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Virtqueues;

/// <summary>
/// The driver side of a split virtqueue. Ref: virtio v1.2 §2.7.
/// </summary>
/// <remarks>
/// <para>
/// The driver never reads back what it wrote into shared memory: descriptors, the free list, chain lengths, tokens,
/// writable capacities and avail.idx live in trusted shadows here, and are only written out. The only fields read
/// from the ring are the device's (used.idx, used entries, used.flags, avail_event), and every one is validated
/// before use; an impossible value latches the queue broken.
/// </para>
/// <para>
/// Free descriptors form a list linked through their shadow next fields, so a direct chain taken from the head of
/// the list is already linked in the order it is written (the trick virtio_ring.c uses too).
/// </para>
/// <para>
/// With VIRTIO_F_IN_ORDER (§2.7.9) descriptors are handed out in ring order: every descriptor's shadow next is the one
/// after it (the last wrapping to 0), and a chain taken back returns its descriptors to the tail of the free range
/// instead of the head of the list, so the free descriptors always form one run of the ring, followed by the chains in
/// flight, oldest first. The device may then return a batch of chains with one used entry naming the last one and
/// move used.idx by the batch size; the driver walks its own record of the chains from the oldest up to the one named,
/// within the entries used.idx covers, and gives the others their full writable length ("used completely").
/// </para>
/// <para>Not thread-safe: one worker owns a queue at a time. TryAdd, KickPrepare and TryTakeUsed allocate nothing.</para>
/// </remarks>
public sealed class SplitVirtqueue : IVirtqueue
{
    // Where the device-visible memory came from, and goes back to in Dispose; also asked to sync it on
    // platforms with non-coherent caches.
    private readonly IDmaAllocator _dma;

    // Offsets of every ring field inside _ring.
    private readonly SplitQueueLayout _layout;

    // The block holding descriptor table, available ring and used ring.
    private readonly DmaRegion _ring;

    // One indirect table per possible head (_indirectStride bytes each); empty without VIRTIO_F_INDIRECT_DESC.
    private readonly DmaRegion _indirectPool;

    // Slices of _ring handed to SyncForDevice / SyncForCpu.
    private readonly DmaRegion _descriptorRegion;
    private readonly DmaRegion _availableRegion;
    private readonly DmaRegion _usedRegion;

    // used_event alone (EVENT_IDX), cleaned after each update: the avail ring around it holds entries not yet published.
    private readonly DmaRegion _usedEventRegion;

    // CPU addresses of fields written or read on every packet, computed once.
    private readonly nint _descriptorTable;
    private readonly nint _availIdx;
    private readonly nint _availFlags;
    private readonly nint _usedEventField;
    private readonly nint _usedFlags;
    private readonly nint _usedIdx;
    private readonly nint _availEventField;

    // Size - 1: ring slots are indexes modulo the (power-of-two) size.
    private readonly int _mask;

    // VIRTIO_F_EVENT_IDX negotiated: used_event / avail_event instead of the flags fields.
    private readonly bool _eventIdx;

    // VIRTIO_F_INDIRECT_DESC negotiated and a table length of at least 2 fits this queue.
    private readonly bool _useIndirect;

    // VIRTIO_F_IN_ORDER negotiated: descriptors in ring order, and used entries that may stand for a batch.
    private readonly bool _inOrder;

    // Longest chain placed in an indirect table (MaxIndirectChain, capped at the queue size as §2.7.5.3.1 requires).
    private readonly int _maxIndirectChain;

    // Bytes between two heads' indirect tables.
    private readonly int _indirectStride;

    // Trusted shadow of each ring descriptor as last written; _descNext also links the free list.
    private readonly ulong[] _descAddress;
    private readonly uint[] _descLength;
    private readonly ushort[] _descFlags;
    private readonly ushort[] _descNext;

    // Per head: ring descriptors the outstanding chain holds (1 for an indirect chain), 0 when the head is not outstanding.
    private readonly int[] _chainLength;

    // Per head: the caller's token.
    private readonly int[] _tokens;

    // Per head: total length of the chain's device-writable buffers, the bound for the used length.
    private readonly uint[] _writableCapacity;

    // Trusted shadow of each available ring entry as last written: an entry that would get the value it already holds
    // is not stored again (with fixed slots it never changes after the first lap).
    private readonly ushort[] _availShadow;

    // Outstanding chains with at least one device-writable buffer; while 0, IN_ORDER reclaim needs no used entry.
    private int _writableOutstanding;

    // First descriptor of the free list (meaningless when _freeCount is 0).
    private ushort _freeHead;

    // Descriptors on the free list.
    private int _freeCount;

    // Chains added and not yet taken back (including those added but not yet published).
    private int _outstanding;

    // The driver's avail.idx: where the next chain goes. Written to the ring only by KickPrepare.
    private ushort _availIdxShadow;

    // avail.idx as last published, the "old" index of the event-index rule.
    private ushort _publishedAvailIdx;

    // The next used entry to read.
    private ushort _lastUsedIdx;

    // used.idx as the device last wrote it, for dumps.
    private ushort _seenUsedIdx;

    // avail.flags as last written (never read back).
    private ushort _availFlagsShadow;

    // used_event as last written (EVENT_IDX only).
    private ushort _usedEventShadow;

    // True after DisableInterrupts and until EnableInterrupts.
    private bool _interruptsSuppressed;

    // IN_ORDER only: chains of the batch being handed out, including the current one; 0 when no batch is open.
    private int _batchRemaining;

    // IN_ORDER only: chains handed out that had no used entry of their own (for dumps).
    private long _chainsReturnedInBatches;

    // IN_ORDER only: the length the used entry of the open batch gave for its last chain (already checked).
    private uint _batchLastLength;

    // Why the device was declared to have made a mess of the ring; null while the queue is sound.
    private string? _brokenReason;

    private bool _disposed;

    /// <summary>
    /// Allocates the rings (and, with indirect descriptors, one indirect table per head) and prepares an empty queue.
    /// The caller then gives <see cref="DescriptorArea"/>, <see cref="DriverArea"/> and <see cref="DeviceArea"/> to the transport.
    /// </summary>
    /// <param name="queueIndex">The queue's index on the device.</param>
    /// <param name="size">Queue size: a power of two from 1 to 32768, at most the device's maximum.</param>
    /// <param name="dma">Where ring memory comes from.</param>
    /// <param name="options">Negotiated ring features and the layout.</param>
    /// <exception cref="VirtioException">For an invalid size (see <see cref="SplitQueueLayout"/>) or when DMA memory runs out.</exception>
    public SplitVirtqueue(int queueIndex, int size, IDmaAllocator dma, VirtqueueOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        ArgumentNullException.ThrowIfNull(dma);
        ArgumentNullException.ThrowIfNull(options);

        QueueIndex = queueIndex;
        _layout = new SplitQueueLayout(size, options.LegacyQueueAlign);
        _dma = dma;
        _mask = size - 1;
        _eventIdx = options.EventIdx;
        _inOrder = options.InOrder;
        _maxIndirectChain = Math.Min(options.MaxIndirectChain, size);
        _useIndirect = options.IndirectDesc && _maxIndirectChain >= 2;
        _indirectStride = _useIndirect ? _maxIndirectChain * SplitRing.DescriptorSize : 0;

        _ring = AllocateChecked(dma, _layout.TotalLength, _layout.Alignment, queueIndex);
        if (_useIndirect)
        {
            try
            {
                _indirectPool = AllocateChecked(dma, size * _indirectStride, SplitRing.DescriptorTableAlignment, queueIndex);
            }
            catch
            {
                dma.Free(_ring);
                throw;
            }
        }

        _descriptorRegion = _ring.Slice(_layout.DescriptorTableOffset, _layout.DescriptorTableLength);
        _availableRegion = _ring.Slice(_layout.AvailableRingOffset, _layout.AvailableRingLength);
        _usedRegion = _ring.Slice(_layout.UsedRingOffset, _layout.UsedRingLength);
        _usedEventRegion = _ring.Slice(_layout.UsedEventOffset, sizeof(ushort));

        nint b = _ring.Pointer;
        _descriptorTable = b + _layout.DescriptorTableOffset;
        _availIdx = b + _layout.AvailIdxOffset;
        _availFlags = b + _layout.AvailFlagsOffset;
        _usedEventField = b + _layout.UsedEventOffset;
        _usedFlags = b + _layout.UsedFlagsOffset;
        _usedIdx = b + _layout.UsedIdxOffset;
        _availEventField = b + _layout.AvailEventOffset;

        _descAddress = new ulong[size];
        _descLength = new uint[size];
        _descFlags = new ushort[size];
        _descNext = new ushort[size];
        _chainLength = new int[size];
        _tokens = new int[size];
        _writableCapacity = new uint[size];
        _availShadow = new ushort[size];
        ResetDriverState();
    }

    /// <inheritdoc />
    public int QueueIndex { get; }

    /// <inheritdoc />
    public int Size => _layout.Size;

    /// <summary>Offsets of the ring areas inside the block at <see cref="DescriptorArea"/>.</summary>
    public SplitQueueLayout Layout => _layout;

    /// <summary>True when chains of more than one buffer go through indirect tables.</summary>
    public bool UsesIndirectDescriptors => _useIndirect;

    /// <inheritdoc />
    public int FreeDescriptors => _freeCount;

    /// <inheritdoc />
    public int Outstanding => _outstanding;

    /// <inheritdoc />
    public bool IsBroken => _brokenReason is not null;

    /// <summary>Why the queue is broken, or null.</summary>
    public string? BrokenReason => _brokenReason;

    /// <inheritdoc />
    public ulong DescriptorArea => _ring.DeviceAddress + (ulong)_layout.DescriptorTableOffset;

    /// <inheritdoc />
    public ulong DriverArea => _ring.DeviceAddress + (ulong)_layout.AvailableRingOffset;

    /// <inheritdoc />
    public ulong DeviceArea => _ring.DeviceAddress + (ulong)_layout.UsedRingOffset;

    /// <inheritdoc />
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool HasUsed
    {
        get
        {
            ThrowIfUnusable();
            _dma.SyncForCpu(_usedRegion);
            return SharedMemory.ReadUInt16(_usedIdx) != _lastUsedIdx;
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">
    /// The chain is empty, longer than the queue, has a device-readable buffer after a device-writable one (§2.7.4.2),
    /// or device-writable buffers totalling more than <see cref="int.MaxValue"/> bytes.
    /// </exception>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool TryAdd(ReadOnlySpan<VirtqBuffer> chain, int token)
    {
        ThrowIfUnusable();
        int count = chain.Length;
        if (count == 0 || count > _layout.Size)
        {
            ThrowBadChainLength(count, _layout.Size, nameof(chain));
        }

        // §2.7.4.2: device-readable elements before device-writable ones. The sum bounds the used length later.
        ulong writable = 0;
        bool seenWritable = false;
        for (int i = 0; i < count; i++)
        {
            if (chain[i].DeviceWritable)
            {
                seenWritable = true;
                writable += chain[i].Length;
            }
            else if (seenWritable)
            {
                ThrowReadableAfterWritable(i, nameof(chain));
            }
        }

        if (writable > int.MaxValue)
        {
            ThrowWritableTooLarge(writable, nameof(chain));
        }

        bool indirect = _useIndirect && count > 1 && count <= _maxIndirectChain;
        int needed = indirect ? 1 : count;
        if (_freeCount < needed)
        {
            return false;
        }

        ushort head = _freeHead;
        if (indirect)
        {
            // §2.7.5.3: the table is a chain of its own, numbered from 0; one ring descriptor points at it.
            int tableOffset = head * _indirectStride;
            nint table = _indirectPool.Pointer + tableOffset;
            for (int i = 0; i < count; i++)
            {
                VirtqBuffer buffer = chain[i];
                ushort flags = buffer.DeviceWritable ? SplitRing.DescFlagWrite : (ushort)0;
                ushort next = 0;
                if (i + 1 < count)
                {
                    flags |= SplitRing.DescFlagNext;
                    next = (ushort)(i + 1);
                }

                WriteDescriptor(table + (i * SplitRing.DescriptorSize), buffer.Address, buffer.Length, flags, next);
            }

            // §2.7.5.3.1: VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT are never set together.
            SetRingDescriptor(
                head,
                _indirectPool.DeviceAddress + (ulong)tableOffset,
                (uint)(count * SplitRing.DescriptorSize),
                SplitRing.DescFlagIndirect);
            _freeHead = _descNext[head];
        }
        else
        {
            ushort index = head;
            for (int i = 0; i < count; i++)
            {
                VirtqBuffer buffer = chain[i];
                ushort flags = buffer.DeviceWritable ? SplitRing.DescFlagWrite : (ushort)0;
                if (i + 1 < count)
                {
                    flags |= SplitRing.DescFlagNext;
                }

                // The free list's link is the chain's link: the next descriptor taken is _descNext[index].
                SetRingDescriptor(index, buffer.Address, buffer.Length, flags);
                index = _descNext[index];
            }

            _freeHead = index;
        }

        _freeCount -= needed;
        _chainLength[head] = needed;
        _tokens[head] = token;
        _writableCapacity[head] = (uint)writable;
        _writableOutstanding += writable != 0 ? 1 : 0;
        _outstanding++;
        PublishHeadLater(head);
        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// The packet paths' add: one descriptor, written only where it differs from the driver's trusted shadow. With fixed
    /// slots (the same buffer in the same descriptor every lap, as IN_ORDER gives a transmit or receive queue) only the
    /// length changes, and the available ring entry not at all, so a packet costs a 4-byte store (or none) and its share
    /// of the index. Skipping a store is safe against a lying device because the driver never reads the descriptor
    /// table or the available ring back: a device that overwrote them misleads only itself (it could read or write any
    /// memory it is given anyway), and everything the driver does read (used entries) is checked against the shadows.
    /// </remarks>
    /// <exception cref="ArgumentException">A device-writable buffer longer than <see cref="int.MaxValue"/> bytes.</exception>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool TryAddOne(ulong address, uint length, bool deviceWritable, int token)
    {
        ThrowIfUnusable();
        if (deviceWritable && length > int.MaxValue)
        {
            ThrowWritableTooLarge(length, nameof(length));
        }

        if (_freeCount == 0)
        {
            return false;
        }

        ushort head = _freeHead;
        ushort flags = deviceWritable ? SplitRing.DescFlagWrite : (ushort)0;
        WriteOneDescriptorIfChanged(head, address, length, flags);
        _freeHead = _descNext[head];
        _freeCount--;
        _chainLength[head] = 1;
        _tokens[head] = token;
        _writableCapacity[head] = deviceWritable ? length : 0;
        _writableOutstanding += deviceWritable ? 1 : 0;
        _outstanding++;
        PublishHeadLater(head);
        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// A receive refill's add: with fixed slots (IN_ORDER, the receive queue's first-in-first-out slots) each buffer lands
    /// in the descriptor and avail entry that already hold it, so the whole refill stores nothing in shared memory but,
    /// at <see cref="KickPrepare"/>, the new avail.idx: an index bump. The driver's own record (tokens, capacities) is
    /// still kept per chain, since every used entry is checked against it. Safe against a lying device for the reasons
    /// <see cref="TryAddOne"/> gives.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="length"/> is more than <see cref="int.MaxValue"/> bytes.</exception>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public int TryAddWritableSlots(ReadOnlySpan<int> tokens, ulong baseAddress, int stride, uint length)
    {
        ThrowIfUnusable();
        if (length > int.MaxValue)
        {
            ThrowWritableTooLarge(length, nameof(length));
        }

        int count = Math.Min(tokens.Length, _freeCount);
        for (int i = 0; i < count; i++)
        {
            int token = tokens[i];
            ushort head = _freeHead;
            WriteOneDescriptorIfChanged(head, baseAddress + ((ulong)token * (ulong)stride), length, SplitRing.DescFlagWrite);
            _freeHead = _descNext[head];
            _chainLength[head] = 1;
            _tokens[head] = token;
            _writableCapacity[head] = length;
            PublishHeadLater(head);
        }

        _freeCount -= count;
        _writableOutstanding += count;
        _outstanding += count;
        return count;
    }

    // A one-descriptor chain's fields, stored only where they differ from the trusted shadow (fixed slots: nothing).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteOneDescriptorIfChanged(ushort head, ulong address, uint length, ushort flags)
    {
        nint descriptor = _descriptorTable + (head * SplitRing.DescriptorSize);
        if (_descAddress[head] != address || _descFlags[head] != flags)
        {
            // Without VIRTQ_DESC_F_NEXT the device ignores next, so it is written only with the rest.
            _descAddress[head] = address;
            _descFlags[head] = flags;
            SharedMemory.WriteUInt64(descriptor + SplitRing.DescriptorAddrOffset, address);
            SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorFlagsOffset, flags);
            SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorNextOffset, _descNext[head]);
        }

        if (_descLength[head] != length)
        {
            _descLength[head] = length;
            SharedMemory.WriteUInt32(descriptor + SplitRing.DescriptorLenOffset, length);
        }
    }

    // Puts head into the next available ring entry, unless the entry already holds it (the trusted shadow says so).
    // The entry is beyond avail.idx, so the device ignores it until KickPrepare publishes it. §2.7.13.2.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PublishHeadLater(ushort head)
    {
        int entry = _availIdxShadow & _mask;
        if (_availShadow[entry] != head)
        {
            _availShadow[entry] = head;
            SharedMemory.WriteUInt16(_ring.Pointer + _layout.AvailEntryOffset(entry), head);
        }

        _availIdxShadow++;
    }

    /// <inheritdoc />
    /// <remarks>Returns false when nothing was added since the last call: there is nothing to notify about.</remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool KickPrepare()
    {
        ThrowIfUnusable();
        ushort oldIdx = _publishedAvailIdx;
        ushort newIdx = _availIdxShadow;
        if (oldIdx == newIdx)
        {
            return false;
        }

        _dma.SyncForDevice(_descriptorRegion);
        if (_useIndirect)
        {
            _dma.SyncForDevice(_indirectPool);
        }

        _dma.SyncForDevice(_availableRegion);

        // Descriptors and available ring entries must be visible before the avail.idx that exposes them (§2.7.13.3.1):
        // the write is a release store, so everything written above is visible first.
        SharedMemory.WriteUInt16(_availIdx, newIdx);
        _publishedAvailIdx = newIdx;
        _dma.SyncForDevice(_availableRegion);

        // The avail.idx store must be visible before avail_event / used.flags are read: otherwise the device could
        // go idle after we read a stale "no notification needed" and before it sees the new index. §2.7.13.4.
        SharedMemory.FullBarrier();
        _dma.SyncForCpu(_usedRegion);
        if (_eventIdx)
        {
            return VirtqueueNotification.NeedEvent(SharedMemory.ReadUInt16(_availEventField), newIdx, oldIdx);
        }

        return (SharedMemory.ReadUInt16(_usedFlags) & SplitRing.UsedFlagNoNotify) == 0;
    }

    /// <inheritdoc />
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.DeviceMisbehaved"/> when the device returned an id out of range or not
    /// outstanding, a length past the chain's writable buffers, or moved used.idx past every outstanding chain;
    /// the queue is then broken and every later call throws too.
    /// </exception>
    public bool TryTakeUsed(out UsedBuffer used)
    {
        ThrowIfUnusable();
        bool taken = _inOrder ? TryTakeUsedInOrder(out used) : TryTakeUsedAnyOrder(out used);
        if (taken)
        {
            AskForNextUsedInterrupt();
        }

        return taken;
    }

    /// <inheritdoc />
    /// <remarks>
    /// used.idx is read once for the whole batch (only when the entries seen at the last read are all taken), and with
    /// VIRTIO_F_EVENT_IDX used_event is written once after it, with one fence, instead of once per entry. Every entry is
    /// still checked as <see cref="TryTakeUsed"/> checks it (id in range and outstanding, or in order the batch it closes;
    /// the length against the chain's writable buffers). Skipping the per-entry used.idx read is safe: the index was
    /// checked against the chains in flight, and entries it covers cannot change meaning by being read later. Writing
    /// used_event once is safe: the device compares it with the used index it publishes (§2.7.10), and the values
    /// skipped lay behind the one written, so they could only have asked for an interrupt sooner, never prevented one.
    /// </remarks>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.DeviceMisbehaved"/> when the first entry of the batch (or used.idx) is a lie, or
    /// the queue is already broken.
    /// </exception>
    public int TakeUsedBatch(Span<UsedBuffer> used)
    {
        ThrowIfUnusable();
        if (used.IsEmpty || (_seenUsedIdx == _lastUsedIdx && !ReadUsedIdx()))
        {
            return 0;
        }

        int count = Math.Min(used.Length, (ushort)(_seenUsedIdx - _lastUsedIdx));
        int taken = 0;
        try
        {
            // The entries at most up to the index just read: the helpers read no used.idx of their own within them.
            if (_inOrder)
            {
                while (taken < count && TryTakeUsedInOrder(out used[taken]))
                {
                    taken++;
                }
            }
            else
            {
                while (taken < count && TryTakeUsedAnyOrder(out used[taken]))
                {
                    taken++;
                }
            }
        }
        catch (VirtioException) when (taken > 0 && IsBroken)
        {
            // The good entries before the lie are the caller's; the latch makes the next call throw.
            return taken;
        }

        AskForNextUsedInterrupt();
        return taken;
    }

    // Reads used.idx (an acquire load: the entries it covers are read after it, §2.7.14 "used.idx before the entries") and
    // checks how far it moved; false when it did not. Any order: every used entry returns one outstanding chain, so the
    // device can be at most _outstanding (≤ Size) ahead. In order: only chains the device was shown, the published ones.
    private bool ReadUsedIdx()
    {
        _dma.SyncForCpu(_usedRegion);
        ushort usedIdx = SharedMemory.ReadUInt16(_usedIdx);
        if (usedIdx == _lastUsedIdx)
        {
            return false;
        }

        int pending = (ushort)(usedIdx - _lastUsedIdx);
        int limit = _inOrder ? _outstanding - (ushort)(_availIdxShadow - _publishedAvailIdx) : _outstanding;
        if (pending > limit)
        {
            ThrowUsedIndexJumped(usedIdx, pending);
        }

        _seenUsedIdx = usedIdx;
        return true;
    }

    // After taking used entries: ask for an interrupt at the next one, as virtqueue_get_buf does; the store must be visible
    // before the next used.idx read so that an entry published in between is not missed by both sides. §2.7.7.
    private void AskForNextUsedInterrupt()
    {
        if (_eventIdx && !_interruptsSuppressed && _brokenReason is null)
        {
            WriteUsedEvent(_lastUsedIdx);
            _dma.SyncForDevice(_usedEventRegion);
            SharedMemory.FullBarrier();
        }
    }

    // TryTakeUsed without VIRTIO_F_IN_ORDER: the entry at _lastUsedIdx names any outstanding chain.
    private bool TryTakeUsedAnyOrder(out UsedBuffer used)
    {
        // While entries seen at the last used.idx read are still untaken, they need no new read of used.idx: in a burst
        // the index is read once per batch, not once per entry.
        if (_seenUsedIdx == _lastUsedIdx && !ReadUsedIdx())
        {
            used = default;
            return false;
        }

        uint id = ReadUsedElement(out int slot, out uint length);
        if (_chainLength[id] == 0)
        {
            ThrowUsedIdNotOutstanding(id, slot);
        }

        length = CheckUsedLength(id, length, slot);
        int token = _tokens[id];
        FreeChain((ushort)id);
        _lastUsedIdx++;
        used = new UsedBuffer(token, (int)length);
        return true;
    }

    // Reads the used element at _lastUsedIdx (§2.7.8): its id, checked to name a descriptor of this ring, and its
    // length as the device wrote it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint ReadUsedElement(out int slot, out uint length)
    {
        slot = _lastUsedIdx & _mask;
        nint element = _ring.Pointer + _layout.UsedElemOffset(slot);
        uint id = SharedMemory.ReadUInt32(element + SplitRing.UsedElemIdOffset);
        length = SharedMemory.ReadUInt32(element + SplitRing.UsedElemLenOffset);
        if (id >= (uint)_layout.Size)
        {
            ThrowUsedIdOutOfRange(id, slot);
        }

        return id;
    }

    // The used length of chain id as the caller may trust it. A chain with no device-writable buffer (a transmit chain)
    // has nothing the length could describe: DPDK 22.11 reports the bytes it read there, and like Linux the driver
    // ignores it (0) instead of breaking the queue. For any other chain the length is checked, since the caller will
    // read that many bytes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint CheckUsedLength(uint id, uint length, int slot)
    {
        if (_writableCapacity[id] == 0)
        {
            return 0;
        }

        if (length > _writableCapacity[id])
        {
            ThrowUsedLengthTooLarge(id, length, slot);
        }

        return length;
    }

    /// <inheritdoc />
    /// <remarks>avail.idx as last published, in bits 16-31: its low 15 bits are next_off and its top bit next_wrap (§2.9).</remarks>
    public uint GetNotificationData() => (uint)QueueIndex | ((uint)_publishedAvailIdx << 16);

    /// <inheritdoc />
    /// <remarks>
    /// Without VIRTIO_F_EVENT_IDX this sets VIRTQ_AVAIL_F_NO_INTERRUPT. With it, flags must stay 0 (§2.7.7.1), so
    /// used_event is set to one behind the last entry taken: the device crosses it again only after 65536 more entries.
    /// </remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public void DisableInterrupts()
    {
        ThrowIfUnusable();
        if (_interruptsSuppressed)
        {
            return;
        }

        _interruptsSuppressed = true;
        if (_eventIdx)
        {
            WriteUsedEvent((ushort)(_lastUsedIdx - 1));
        }
        else
        {
            _availFlagsShadow |= SplitRing.AvailFlagNoInterrupt;
            SharedMemory.WriteUInt16(_availFlags, _availFlagsShadow);
        }

        _dma.SyncForDevice(_availableRegion);
    }

    /// <inheritdoc />
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool EnableInterrupts()
    {
        ArmUsedEvent(0);

        // An entry the device published before it saw the request raises no interrupt: the caller takes it now.
        _dma.SyncForCpu(_usedRegion);
        return SharedMemory.ReadUInt16(_usedIdx) == _lastUsedIdx;
    }

    /// <inheritdoc />
    /// <remarks>
    /// With EVENT_IDX, used_event = last used index + 3/4 of the chains published and not yet used
    /// (<see cref="SplitRing.DelayedUsedEvent"/>); without it, the flag is cleared as by <see cref="EnableInterrupts"/>
    /// (the device then notifies at the next used buffer). Until the next <see cref="DisableInterrupts"/>, taking a used
    /// entry moves used_event to the next one, as after <see cref="EnableInterrupts"/>. Ref: virtio v1.2 §2.7.10.
    /// </remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool EnableInterruptsDelayed()
    {
        ushort delay = SplitRing.DelayedEventDistance((ushort)(_publishedAvailIdx - _lastUsedIdx));
        ArmUsedEvent(delay);

        // An index already past the event point means the device crossed it before it saw the request and will not notify.
        _dma.SyncForCpu(_usedRegion);
        return (ushort)(SharedMemory.ReadUInt16(_usedIdx) - _lastUsedIdx) <= delay;
    }

    // Asks for a used-buffer notification once the device has used delay + 1 chains past the last one taken (with
    // EVENT_IDX, used_event = last used index + delay; without it, NO_INTERRUPT cleared, which means the next one),
    // and makes the request visible before the caller re-reads used.idx. Ref: virtio v1.2 §2.7.7, §2.7.10.
    private void ArmUsedEvent(ushort delay)
    {
        ThrowIfUnusable();
        _interruptsSuppressed = false;
        if (_eventIdx)
        {
            WriteUsedEvent((ushort)(_lastUsedIdx + delay));
        }
        else
        {
            _availFlagsShadow &= unchecked((ushort)~SplitRing.AvailFlagNoInterrupt);
            SharedMemory.WriteUInt16(_availFlags, _availFlagsShadow);
        }

        _dma.SyncForDevice(_availableRegion);

        // The request must be visible before used.idx is re-read: an entry the device published before it saw the
        // request raises no interrupt, so the caller has to see it instead (the race of §2.7.10).
        SharedMemory.FullBarrier();
    }

    /// <inheritdoc />
    /// <remarks>
    /// Works on a broken queue. Afterwards the queue is as new (indexes 0, rings zeroed, every descriptor free), which
    /// matches a device that has been reset, so it can be activated again; a broken queue stays broken.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="tokens"/> is shorter than <see cref="Outstanding"/>.</exception>
    public int DetachAll(Span<int> tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tokens.Length < _outstanding)
        {
            throw new ArgumentException($"{_outstanding} chains are outstanding but the span holds only {tokens.Length} tokens.", nameof(tokens));
        }

        int count = 0;
        for (int head = 0; head < _chainLength.Length; head++)
        {
            if (_chainLength[head] != 0)
            {
                tokens[count++] = _tokens[head];
            }
        }

        _ring.Span.Clear();
        _dma.SyncForDevice(_ring);
        ResetDriverState();
        return count;
    }

    /// <inheritdoc />
    /// <remarks>Only for a device that was reset as a whole; after a queue reset alone a broken queue stays broken.</remarks>
    public int DetachAllAfterDeviceReset(Span<int> tokens)
    {
        int count = DetachAll(tokens);
        _brokenReason = null;
        return count;
    }

    /// <inheritdoc />
    public VirtqueueState GetState()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _dma.SyncForCpu(_usedRegion);
        return new VirtqueueState
        {
            QueueIndex = QueueIndex,
            Layout = "split",
            Size = _layout.Size,
            AvailableIndex = _availIdxShadow,
            DeviceUsedIndex = SharedMemory.ReadUInt16(_usedIdx),
            LastUsedIndex = _lastUsedIdx,
            FreeDescriptors = _freeCount,
            Outstanding = _outstanding,
            InterruptsSuppressed = _interruptsSuppressed,
            NotificationsSuppressed = !_eventIdx && (SharedMemory.ReadUInt16(_usedFlags) & SplitRing.UsedFlagNoNotify) != 0,
            UsedEvent = _eventIdx ? _usedEventShadow : null,
            AvailEvent = _eventIdx ? SharedMemory.ReadUInt16(_availEventField) : null,
            DescriptorArea = DescriptorArea,
            DriverArea = DriverArea,
            DeviceArea = DeviceArea,
            BrokenReason = _brokenReason,
            ChainsReturnedInBatches = _inOrder ? _chainsReturnedInBatches : null,
        };
    }

    /// <summary>Returns the ring memory and indirect tables to the allocator. The device must no longer use the queue.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _dma.Free(_ring);
        if (!_indirectPool.IsEmpty)
        {
            _dma.Free(_indirectPool);
        }
    }

    /// <summary>True when the queue was set up for VIRTIO_F_IN_ORDER.</summary>
    public bool InOrder => _inOrder;

    /// <summary>The driver's trusted copy of ring descriptor <paramref name="index"/>, for tests and dumps.</summary>
    internal (ulong Address, uint Length, ushort Flags, ushort Next) GetDescriptorShadow(int index)
        => (_descAddress[index], _descLength[index], _descFlags[index], _descNext[index]);

    private static DmaRegion AllocateChecked(IDmaAllocator dma, int length, int alignment, int queueIndex)
    {
        DmaRegion region = dma.Allocate(length, alignment);
        if (region.Length < length || region.DeviceAddress % (ulong)alignment != 0)
        {
            dma.Free(region);
            throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"Queue {queueIndex}: the DMA allocator returned {region} for a request of {length} bytes aligned to {alignment}.");
        }

        return region;
    }

    private void ResetDriverState()
    {
        int size = _layout.Size;
        for (int i = 0; i < size; i++)
        {
            // i + 1 of the last descriptor is never followed: _freeCount reaches 0 first.
            _descNext[i] = (ushort)(i + 1);
            _descAddress[i] = 0;
            _descLength[i] = 0;
            _descFlags[i] = 0;
        }

        if (_inOrder)
        {
            // §2.7.5 with IN_ORDER: the ring order wraps, so the last descriptor's next is 0; these links never change.
            _descNext[size - 1] = 0;
        }

        _batchRemaining = 0;
        _batchLastLength = 0;

        Array.Clear(_chainLength);
        Array.Clear(_tokens);
        Array.Clear(_writableCapacity);
        Array.Clear(_availShadow);
        _writableOutstanding = 0;
        _freeHead = 0;
        _freeCount = size;
        _outstanding = 0;
        _availIdxShadow = 0;
        _publishedAvailIdx = 0;
        _lastUsedIdx = 0;
        _seenUsedIdx = 0;
        _availFlagsShadow = 0;
        _usedEventShadow = 0;
        _interruptsSuppressed = false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetRingDescriptor(ushort index, ulong address, uint length, ushort flags)
    {
        ushort next = _descNext[index];
        _descAddress[index] = address;
        _descLength[index] = length;
        _descFlags[index] = flags;
        WriteDescriptor(_descriptorTable + (index * SplitRing.DescriptorSize), address, length, flags, next);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteDescriptor(nint descriptor, ulong address, uint length, ushort flags, ushort next)
    {
        SharedMemory.WriteUInt64(descriptor + SplitRing.DescriptorAddrOffset, address);
        SharedMemory.WriteUInt32(descriptor + SplitRing.DescriptorLenOffset, length);
        SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorFlagsOffset, flags);
        SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorNextOffset, next);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteUsedEvent(ushort value)
    {
        _usedEventShadow = value;
        SharedMemory.WriteUInt16(_usedEventField, value);
    }

    // Puts the chain starting at head back on the free list, walking the trusted shadow only.
    private void FreeChain(ushort head)
    {
        int length = _chainLength[head];
        ushort last = head;
        for (int i = 1; i < length; i++)
        {
            last = _descNext[last];
        }

        _descNext[last] = _freeHead;
        _freeHead = head;
        _freeCount += length;
        _writableOutstanding -= _writableCapacity[head] != 0 ? 1 : 0;
        _chainLength[head] = 0;
        _tokens[head] = 0;
        _writableCapacity[head] = 0;
        _outstanding--;
    }

    // TryTakeUsed with VIRTIO_F_IN_ORDER. A used entry opens a batch: it sits at the slot of the batch's first chain and
    // names the head of its last; used.idx moved by the batch size. The chains are handed out oldest first, one per
    // call, and the used entry is read once per batch. Ref: virtio v1.2 §2.7.9.
    private bool TryTakeUsedInOrder(out UsedBuffer used)
    {
        if (_batchRemaining == 0)
        {
            if (_seenUsedIdx == _lastUsedIdx && !ReadUsedIdx())
            {
                used = default;
                return false;
            }

            if (_writableOutstanding == 0)
            {
                // Every chain in flight is device-readable only (a transmit queue): a used entry could tell nothing
                // but where a batch ends, and in order used.idx already counts the chains returned, so they are taken
                // by counting, without reading an entry (as DPDK's in-order path does). Safe against a lying device:
                // used.idx was checked against the published chains above, the lengths of read-only chains are
                // ignored in any case, and a device that claims a chain it has not finished reading could as well
                // write an entry naming it; either way it gets back only buffers it was given, to read garbage from.
                _batchRemaining = (ushort)(_seenUsedIdx - _lastUsedIdx);
                _batchLastLength = 0;
                return TakeOldestInOrder(out used);
            }

            uint id = ReadUsedElement(out int slot, out uint length);

            // Walk the trusted record from the oldest chain in flight, in the order the chains were made available, to
            // the one named; the batch may not reach past what used.idx covers. Anything else (a chain already taken,
            // not yet published, or not a head at all) is a lie.
            int covered = (ushort)(_seenUsedIdx - _lastUsedIdx);
            int head = OldestHeadInOrder;
            int batch = 1;
            while (head != id)
            {
                if (batch == covered)
                {
                    ThrowUsedIdNotInBatch(id, slot, covered);
                }

                head = (head + _chainLength[head]) & _mask;
                batch++;
            }

            _batchRemaining = batch;
            _batchLastLength = CheckUsedLength(id, length, slot);
            _chainsReturnedInBatches += batch - 1;
        }

        return TakeOldestInOrder(out used);
    }

    // Hands out the oldest chain of the open batch.
    private bool TakeOldestInOrder(out UsedBuffer used)
    {
        // §2.7.9: the chains a batch skipped were used completely, so their length is their writable capacity.
        int oldest = OldestHeadInOrder;
        uint taken = _batchRemaining == 1 ? _batchLastLength : _writableCapacity[oldest];
        int token = _tokens[oldest];
        int descriptors = _chainLength[oldest];
        _writableOutstanding -= _writableCapacity[oldest] != 0 ? 1 : 0;
        _chainLength[oldest] = 0;
        _tokens[oldest] = 0;
        _writableCapacity[oldest] = 0;
        _outstanding--;

        // The oldest chain sits right after the free run, so returning it just lengthens the run: ring order is kept.
        _freeCount += descriptors;
        _batchRemaining--;
        _lastUsedIdx++;
        used = new UsedBuffer(token, (int)taken);
        return true;
    }

    // IN_ORDER only: the head of the oldest chain in flight, right after the run of free descriptors (meaningful while
    // a chain is outstanding). _freeHead is always defined in this mode, since every descriptor's next is fixed.
    private int OldestHeadInOrder => (_freeHead + _freeCount) & _mask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ThrowIfUnusable()
    {
        if (_disposed || _brokenReason is not null)
        {
            ThrowUnusable();
        }
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"Queue {QueueIndex} is broken: {_brokenReason}");
    }

    // Latches the queue broken ("the other side has made a mess, don't try any more") and throws.
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Break(string reason)
    {
        _brokenReason = reason;
        VirtioEventSource.Log.DeviceMisbehaved(QueueIndex, reason);
        throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"Queue {QueueIndex} is broken: {reason}");
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIndexJumped(ushort usedIdx, int pending)
        => Break(
            $"the device moved used.idx to {usedIdx}, {pending} entries past the last one taken ({_lastUsedIdx}), " +
            $"but only {_outstanding} chains are outstanding in a ring of {_layout.Size}.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIdOutOfRange(uint id, int slot)
        => Break($"used entry {slot} names descriptor {id}, but the ring has only {_layout.Size} descriptors.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIdNotOutstanding(uint id, int slot)
        => Break($"used entry {slot} names descriptor {id}, which is not the head of an outstanding chain.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIdNotInBatch(uint id, int slot, int covered)
        => Break(
            $"used entry {slot} names descriptor {id}, which is not the head of any of the {covered} oldest chains in flight " +
            "that used.idx covers; with VIRTIO_F_IN_ORDER a used entry must name a chain at or after the oldest one (§2.7.9).");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedLengthTooLarge(uint id, uint length, int slot)
        => Break(
            $"used entry {slot} says the device wrote {length} bytes into the chain at descriptor {id}, " +
            $"whose device-writable buffers hold only {_writableCapacity[id]} bytes.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadChainLength(int count, int size, string paramName)
        => throw new ArgumentException($"A chain must hold 1 to {size} buffers (the queue size); this one holds {count}.", paramName);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowReadableAfterWritable(int index, string paramName)
        => throw new ArgumentException(
            $"Buffer {index} of the chain is device-readable but follows a device-writable one; readable buffers must come first (virtio v1.2 §2.7.4.2).",
            paramName);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowWritableTooLarge(ulong writable, string paramName)
        => throw new ArgumentException($"The chain's device-writable buffers total {writable} bytes, more than {int.MaxValue}.", paramName);
}
