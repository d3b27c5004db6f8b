using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Virtqueues;

/// <summary>
/// The driver side of a packed virtqueue (VIRTIO_F_RING_PACKED). Ref: virtio v1.2 §2.8.
/// </summary>
/// <remarks>
/// <para>
/// One ring of descriptors carries both directions: the driver writes available descriptors at its next slot, the
/// device overwrites them with used descriptors (one per chain, naming the chain's Buffer ID), and the AVAIL and USED
/// flag bits together with a wrap counter on each side tell which is which. Buffer IDs come from a free list kept
/// here; per ID the driver keeps a trusted shadow of the token, the number of ring descriptors the chain took and its
/// writable capacity. The driver reads back only the flags, id and len of the used descriptor at its next used slot,
/// and validates each before use; an impossible value latches the queue broken.
/// </para>
/// <para>
/// <see cref="TryAdd"/> writes every descriptor of a chain except the head's flags; <see cref="KickPrepare"/> writes
/// those after one store barrier, so the device never sees a partial list (§2.8.6) and nothing is visible before
/// KickPrepare, as <see cref="IVirtqueue"/> promises.
/// </para>
/// <para>
/// When the device completes chains out of order it writes the used descriptor of each at its own next used slot and
/// skips forward by that chain's descriptor count; the driver skips by the count it recorded for the returned ID
/// (§2.8.2, §2.8.6), so it never relies on the device to say how far to move.
/// </para>
/// <para>
/// With VIRTIO_F_IN_ORDER (§2.8.9) the device may instead write one used descriptor for a batch of chains, at the slot
/// of the batch's first chain and naming the Buffer ID of its last, and skip the whole batch. The driver records which
/// ID starts at each slot, walks from the oldest chain in flight (whose head is the next used slot) to the ID named,
/// within the descriptors in flight, hands the chains out oldest first, gives the skipped ones their full writable
/// length ("used completely") and skips by the counts it recorded.
/// </para>
/// <para>Not thread-safe: one worker owns a queue at a time. TryAdd, KickPrepare and TryTakeUsed allocate nothing.</para>
/// </remarks>
public sealed class PackedVirtqueue : IVirtqueue
{
    // Where the device-visible memory came from, and goes back to in Dispose; also asked to sync it on
    // platforms with non-coherent caches.
    private readonly IDmaAllocator _dma;

    // Offsets of the ring and both event suppression structures inside _ring.
    private readonly PackedQueueLayout _layout;

    // The block holding the Descriptor Ring and the two event suppression structures.
    private readonly DmaRegion _ring;

    // One indirect table per Buffer ID (_indirectStride bytes each); empty without VIRTIO_F_INDIRECT_DESC.
    private readonly DmaRegion _indirectPool;

    // Slices of _ring handed to SyncForDevice / SyncForCpu.
    private readonly DmaRegion _descriptorRegion;
    private readonly DmaRegion _driverEventRegion;
    private readonly DmaRegion _deviceEventRegion;

    // CPU addresses of the fields touched on every packet, computed once.
    private readonly nint _descriptorRing;
    private readonly nint _driverEventOffWrap;
    private readonly nint _driverEventFlags;
    private readonly nint _deviceEventOffWrap;
    private readonly nint _deviceEventFlags;

    // VIRTIO_F_EVENT_IDX negotiated: RING_EVENT_FLAGS_DESC may be used (by the driver) and honoured (from the device).
    private readonly bool _eventIdx;

    // VIRTIO_F_INDIRECT_DESC negotiated and a table length of at least 2 fits this queue.
    private readonly bool _useIndirect;

    // VIRTIO_F_IN_ORDER negotiated: a used descriptor may stand for a batch of chains.
    private readonly bool _inOrder;

    // IN_ORDER only (else empty): per ring slot, the Buffer ID of the chain whose first descriptor was written there;
    // the driver's own record of which chain the device reaches next, never read from the ring.
    private readonly ushort[] _idAtSlot;

    // Longest chain placed in an indirect table (MaxIndirectChain, capped at the queue size as §2.8.17 requires).
    private readonly int _maxIndirectChain;

    // Bytes between two IDs' indirect tables.
    private readonly int _indirectStride;

    // Per Buffer ID: the caller's token.
    private readonly int[] _tokens;

    // Per Buffer ID: ring descriptors the outstanding chain holds (1 for an indirect chain), 0 when the ID is free.
    // This, not anything the device writes, is how far the driver skips when the chain comes back.
    private readonly int[] _descriptorCount;

    // Per Buffer ID: total length of the chain's device-writable buffers, the bound for the used length.
    private readonly uint[] _writableCapacity;

    // Per Buffer ID: true once KickPrepare made the chain available; only such IDs may come back used.
    private readonly bool[] _published;

    // Per Buffer ID: the ring slot of the chain's first descriptor, and the flags that make it available,
    // held back until KickPrepare.
    private readonly ushort[] _headSlot;
    private readonly ushort[] _headFlags;

    // Stack of free Buffer IDs; the top is _freeIds[_freeIdCount - 1].
    private readonly ushort[] _freeIds;

    // IDs added since the last KickPrepare, in ring order.
    private readonly ushort[] _pendingIds;

    private int _freeIdCount;

    private int _pendingCount;

    // Ring descriptors taken by the chains in _pendingIds.
    private int _unpublishedDescriptors;

    // Ring descriptors not held by any outstanding chain.
    private int _freeDescriptors;

    // Ring descriptors held by published chains not yet taken back: when nonzero, the slot at _nextUsed was written by
    // the driver in the current lap, so its AVAIL bit must equal _usedWrap.
    private int _inFlightDescriptors;

    // Chains added and not yet taken back (including those added but not yet published).
    private int _outstanding;

    // The slot the next chain starts at, and the Driver Ring Wrap Counter (starts at 1, §2.8.1).
    private int _nextAvail;
    private bool _availWrap;

    // The slot of the next used descriptor, and the wrap counter the device will mark it with.
    private int _nextUsed;
    private bool _usedWrap;

    // The Driver Event Suppression structure as last written (never read back).
    private ushort _driverEventFlagsShadow;
    private ushort _driverEventOffWrapShadow;

    // True after DisableInterrupts and until EnableInterrupts.
    private bool _interruptsSuppressed;

    // IN_ORDER only: chains of the batch being handed out, including the current one; 0 when no batch is open.
    private int _batchRemaining;

    // IN_ORDER only: chains handed out that had no used entry of their own (for dumps).
    private long _chainsReturnedInBatches;

    // IN_ORDER only: the length the used descriptor of the open batch gave for its last chain (already checked).
    private uint _batchLastLength;

    // Why the device was declared to have made a mess of the ring; null while the queue is sound.
    private string? _brokenReason;

    private bool _disposed;

    /// <summary>
    /// Allocates the ring and event suppression structures (and, with indirect descriptors, one indirect table per
    /// Buffer ID) and prepares an empty queue. The caller then gives <see cref="DescriptorArea"/>,
    /// <see cref="DriverArea"/> and <see cref="DeviceArea"/> to the transport.
    /// </summary>
    /// <param name="queueIndex">The queue's index on the device.</param>
    /// <param name="size">Queue size: from 1 to 32768 (any value, not only powers of two), at most the device's maximum.</param>
    /// <param name="dma">Where ring memory comes from.</param>
    /// <param name="options">Negotiated ring features. <see cref="VirtqueueOptions.LegacyQueueAlign"/> is ignored: packed rings exist only on modern interfaces.</param>
    /// <exception cref="VirtioException">For an invalid size (see <see cref="PackedQueueLayout"/>) or when DMA memory runs out.</exception>
    public PackedVirtqueue(int queueIndex, int size, IDmaAllocator dma, VirtqueueOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        ArgumentNullException.ThrowIfNull(dma);
        ArgumentNullException.ThrowIfNull(options);

        QueueIndex = queueIndex;
        _layout = new PackedQueueLayout(size);
        _dma = dma;
        _eventIdx = options.EventIdx;
        _inOrder = options.InOrder;
        _idAtSlot = _inOrder ? new ushort[size] : [];
        _maxIndirectChain = Math.Min(options.MaxIndirectChain, size);
        _useIndirect = options.IndirectDesc && _maxIndirectChain >= 2;
        _indirectStride = _useIndirect ? _maxIndirectChain * PackedRing.DescriptorSize : 0;

        _ring = AllocateChecked(dma, _layout.TotalLength, _layout.Alignment, queueIndex);
        if (_useIndirect)
        {
            try
            {
                _indirectPool = AllocateChecked(dma, size * _indirectStride, PackedRing.DescriptorRingAlignment, queueIndex);
            }
            catch
            {
                dma.Free(_ring);
                throw;
            }
        }

        _descriptorRegion = _ring.Slice(_layout.DescriptorRingOffset, _layout.DescriptorRingLength);
        _driverEventRegion = _ring.Slice(_layout.DriverEventSuppressionOffset, PackedRing.EventSuppressionSize);
        _deviceEventRegion = _ring.Slice(_layout.DeviceEventSuppressionOffset, PackedRing.EventSuppressionSize);

        nint b = _ring.Pointer;
        _descriptorRing = b + _layout.DescriptorRingOffset;
        _driverEventOffWrap = b + _layout.DriverEventSuppressionOffset + PackedRing.EventOffWrapOffset;
        _driverEventFlags = b + _layout.DriverEventSuppressionOffset + PackedRing.EventFlagsOffset;
        _deviceEventOffWrap = b + _layout.DeviceEventSuppressionOffset + PackedRing.EventOffWrapOffset;
        _deviceEventFlags = b + _layout.DeviceEventSuppressionOffset + PackedRing.EventFlagsOffset;

        _tokens = new int[size];
        _descriptorCount = new int[size];
        _writableCapacity = new uint[size];
        _published = new bool[size];
        _headSlot = new ushort[size];
        _headFlags = new ushort[size];
        _freeIds = new ushort[size];
        _pendingIds = new ushort[size];
        ResetDriverState();
    }

    /// <inheritdoc />
    public int QueueIndex { get; }

    /// <inheritdoc />
    public int Size => _layout.Size;

    /// <summary>Offsets of the ring parts inside the block at <see cref="DescriptorArea"/>.</summary>
    public PackedQueueLayout Layout => _layout;

    /// <summary>True when chains of more than one buffer go through indirect tables.</summary>
    public bool UsesIndirectDescriptors => _useIndirect;

    /// <inheritdoc />
    public int FreeDescriptors => _freeDescriptors;

    /// <inheritdoc />
    public int Outstanding => _outstanding;

    /// <inheritdoc />
    public bool IsBroken => _brokenReason is not null;

    /// <summary>Why the queue is broken, or null.</summary>
    public string? BrokenReason => _brokenReason;

    /// <inheritdoc />
    /// <remarks>For a packed queue: the Descriptor Ring.</remarks>
    public ulong DescriptorArea => _ring.DeviceAddress + (ulong)_layout.DescriptorRingOffset;

    /// <inheritdoc />
    /// <remarks>For a packed queue: the Driver Event Suppression structure.</remarks>
    public ulong DriverArea => _ring.DeviceAddress + (ulong)_layout.DriverEventSuppressionOffset;

    /// <inheritdoc />
    /// <remarks>For a packed queue: the Device Event Suppression structure.</remarks>
    public ulong DeviceArea => _ring.DeviceAddress + (ulong)_layout.DeviceEventSuppressionOffset;

    /// <inheritdoc />
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool HasUsed
    {
        get
        {
            ThrowIfUnusable();

            // An open IN_ORDER batch has chains left whose slots the device skipped; 0 otherwise.
            return _batchRemaining != 0 || NextIsUsed();
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">
    /// The chain is empty, longer than the queue, has a device-readable buffer after a device-writable one (§2.8.17),
    /// or device-writable buffers totalling more than <see cref="int.MaxValue"/> bytes.
    /// </exception>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool TryAdd(ReadOnlySpan<VirtqBuffer> chain, int token)
    {
        ThrowIfUnusable();
        int count = chain.Length;
        int size = _layout.Size;
        if (count == 0 || count > size)
        {
            ThrowBadChainLength(count, size, nameof(chain));
        }

        // §2.8.17: device-readable elements before device-writable ones. The sum bounds the used length later.
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

        // §2.8.17: room for the whole list before its first descriptor is made available. Every chain takes at least
        // one descriptor, so a free descriptor implies a free Buffer ID.
        if (_freeDescriptors < needed)
        {
            return false;
        }

        ushort id = _freeIds[--_freeIdCount];
        int headSlot = _nextAvail;
        ushort headFlags;
        if (indirect)
        {
            // §2.8.7: the table holds packed descriptors read in sequence; WRITE is their only valid flag and their
            // id is reserved. One ring descriptor points at it, without WRITE (reserved there) and without NEXT.
            int tableOffset = id * _indirectStride;
            nint table = _indirectPool.Pointer + tableOffset;
            for (int i = 0; i < count; i++)
            {
                VirtqBuffer buffer = chain[i];
                WriteDescriptor(table + (i * PackedRing.DescriptorSize), buffer.Address, buffer.Length, 0, buffer.DeviceWritable ? PackedRing.DescFlagWrite : (ushort)0);
            }

            headFlags = (ushort)(PackedRing.DescFlagIndirect | PackedRing.AvailableFlags(_availWrap));
            WriteDescriptorBody(headSlot, _indirectPool.DeviceAddress + (ulong)tableOffset, (uint)(count * PackedRing.DescriptorSize), id);
            AdvanceAvail(1);
        }
        else
        {
            headFlags = 0;
            for (int i = 0; i < count; i++)
            {
                VirtqBuffer buffer = chain[i];

                // §2.8.6: flags must be right in every descriptor of the list, including AVAIL/USED, which follow the
                // wrap counter of the descriptor's own slot when the list runs past the end of the ring.
                ushort flags = PackedRing.AvailableFlags(_availWrap);
                if (buffer.DeviceWritable)
                {
                    flags |= PackedRing.DescFlagWrite;
                }

                if (i + 1 < count)
                {
                    flags |= PackedRing.DescFlagNext;
                }

                // The Buffer ID belongs in the last descriptor (§2.8.6); it is written in every one, which costs
                // nothing and lets a device read it from any.
                WriteDescriptorBody(_nextAvail, buffer.Address, buffer.Length, id);
                if (i == 0)
                {
                    headFlags = flags;
                }
                else
                {
                    // Invisible to the device: it polls only the head's slot, whose flags are written last (§2.8.2).
                    SharedMemory.WriteUInt16(DescriptorFlags(_nextAvail), flags);
                }

                AdvanceAvail(1);
            }
        }

        _headSlot[id] = (ushort)headSlot;
        _headFlags[id] = headFlags;
        if (_inOrder)
        {
            _idAtSlot[headSlot] = id;
        }

        _descriptorCount[id] = needed;
        _tokens[id] = token;
        _writableCapacity[id] = (uint)writable;
        _pendingIds[_pendingCount++] = id;
        _unpublishedDescriptors += needed;
        _freeDescriptors -= needed;
        _outstanding++;
        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Makes every chain added since the last call available by writing the head flags held back, then reads the
    /// Device Event Suppression structure: RING_EVENT_FLAGS_DISABLE means no notification; RING_EVENT_FLAGS_DESC (with
    /// VIRTIO_F_EVENT_IDX) means one only if this batch made the named descriptor available; anything else (ENABLE,
    /// DESC without EVENT_IDX, the reserved value) means notify, the safe answer. Returns false when nothing was added.
    /// </remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool KickPrepare()
    {
        ThrowIfUnusable();
        if (_pendingCount == 0)
        {
            return false;
        }

        // Every descriptor of every pending list, and its indirect table, must be visible before the head flags that
        // make the list available: the device may read it the moment it sees them (§2.8.21.1.1). The flag writes are
        // release stores, so everything written before them is visible first; on a non-coherent platform the lists
        // are cleaned first, and the head flags after.
        SyncPendingForDevice();
        if (_useIndirect)
        {
            for (int i = 0; i < _pendingCount; i++)
            {
                ushort id = _pendingIds[i];
                if ((_headFlags[id] & PackedRing.DescFlagIndirect) != 0)
                {
                    _dma.SyncForDevice(_indirectPool.Slice(id * _indirectStride, _indirectStride));
                }
            }
        }

        for (int i = 0; i < _pendingCount; i++)
        {
            ushort id = _pendingIds[i];
            SharedMemory.WriteUInt16(DescriptorFlags(_headSlot[id]), _headFlags[id]);
            _published[id] = true;
        }

        SyncPendingForDevice();
        int added = _unpublishedDescriptors;
        _inFlightDescriptors += added;
        _unpublishedDescriptors = 0;
        _pendingCount = 0;

        // The head flags must be visible before the device's event suppression structure is read: otherwise the device
        // could go idle after we read a stale "no notification needed" and before it sees the new descriptors.
        // §2.8.21.3.1.
        SharedMemory.FullBarrier();
        _dma.SyncForCpu(_deviceEventRegion);
        ushort flags = (ushort)(SharedMemory.ReadUInt16(_deviceEventFlags) & PackedRing.EventFlagsMask);
        if (flags == PackedRing.RingEventFlagsDisable)
        {
            return false;
        }

        if (flags == PackedRing.RingEventFlagsDesc && _eventIdx)
        {
            return PackedRing.NeedEvent(SharedMemory.ReadUInt16(_deviceEventOffWrap), _nextAvail, _availWrap, added, _layout.Size);
        }

        return true;
    }

    /// <inheritdoc />
    /// <remarks>
    /// The length is always read from the used descriptor and checked against the chain's writable buffers. §2.8.4 calls
    /// it reserved when VIRTQ_DESC_F_WRITE is clear, but QEMU (7.2) never sets WRITE on used descriptors and Linux reads
    /// len unconditionally; the capacity check keeps a lying length harmless either way.
    /// </remarks>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.DeviceMisbehaved"/> when the device returned a Buffer ID out of range or not in
    /// flight, a length past the chain's writable buffers, a used descriptor while nothing was in flight, or flag bits
    /// that match neither an available nor a used descriptor of the current lap; the queue is then broken and every
    /// later call throws too.
    /// </exception>
    public bool TryTakeUsed(out UsedBuffer used)
    {
        ThrowIfUnusable();
        if (_inOrder)
        {
            return TryTakeUsedInOrder(out used);
        }

        if (!TryReadUsedDescriptor(out ushort id, out uint length))
        {
            used = default;
            return false;
        }

        // A chain with no device-writable buffer (a transmit chain) has nothing the length could describe: DPDK 22.11
        // reports the bytes it read there, and like Linux the driver ignores it instead of breaking the queue. For any
        // other chain the length is checked, since the caller will read that many bytes.
        if (_writableCapacity[id] == 0)
        {
            length = 0;
        }
        else if (length > _writableCapacity[id])
        {
            ThrowUsedLengthTooLarge(id, length);
        }

        int token = _tokens[id];
        int descriptors = _descriptorCount[id];
        _published[id] = false;
        _descriptorCount[id] = 0;
        _tokens[id] = 0;
        _writableCapacity[id] = 0;
        _freeIds[_freeIdCount++] = id;
        _freeDescriptors += descriptors;
        _inFlightDescriptors -= descriptors;
        _outstanding--;

        // The device wrote one used descriptor for the whole list and skipped its other slots; so does the driver,
        // by the count it recorded, never by anything the device wrote. §2.8.6.
        _nextUsed += descriptors;
        if (_nextUsed >= _layout.Size)
        {
            _nextUsed -= _layout.Size;
            _usedWrap = !_usedWrap;
        }

        if (_eventIdx && !_interruptsSuppressed)
        {
            // Ask for an interrupt at the next used slot, as virtqueue_get_buf does; the store must be visible before
            // the next flags read so that a descriptor used in between is not missed by both sides. §2.8.10.
            WriteDriverOffWrap(PackedRing.EventOffWrap(_nextUsed, _usedWrap));
            _dma.SyncForDevice(_driverEventRegion);
            SharedMemory.FullBarrier();
        }

        used = new UsedBuffer(token, (int)length);
        return true;
    }

    /// <inheritdoc />
    /// <remarks>Writes RING_EVENT_FLAGS_DISABLE, which packed rings honour with or without VIRTIO_F_EVENT_IDX (§2.8.10).</remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public void DisableInterrupts()
    {
        ThrowIfUnusable();
        if (_interruptsSuppressed)
        {
            return;
        }

        _interruptsSuppressed = true;
        WriteDriverEventFlags(PackedRing.RingEventFlagsDisable);
        _dma.SyncForDevice(_driverEventRegion);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Without VIRTIO_F_EVENT_IDX writes RING_EVENT_FLAGS_ENABLE. With it, names the next used slot and its wrap counter
    /// in desc_event_off/wrap, then writes RING_EVENT_FLAGS_DESC, so the device interrupts at the next used descriptor.
    /// </remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool EnableInterrupts()
    {
        ArmUsedEvent(_nextUsed, _usedWrap);

        // A descriptor the device used before it saw the request raises no interrupt: the caller takes it now.
        return _batchRemaining == 0 && !NextIsUsed();
    }

    /// <inheritdoc />
    /// <remarks>
    /// With EVENT_IDX, names the slot 3/4 of the in-flight descriptors ahead (<see cref="PackedRing.DelayedEventOffWrap"/>)
    /// with RING_EVENT_FLAGS_DESC; without it, RING_EVENT_FLAGS_ENABLE as <see cref="EnableInterrupts"/> writes. Until the
    /// next <see cref="DisableInterrupts"/>, taking a used descriptor moves the event to the next slot, as after
    /// <see cref="EnableInterrupts"/>. Ref: virtio v1.2 §2.8.10.
    /// </remarks>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.DeviceMisbehaved"/> once the queue is broken.</exception>
    public bool EnableInterruptsDelayed()
    {
        (int slot, bool wrap) = PackedRing.DelayedEventSlot(_nextUsed, _usedWrap, _inFlightDescriptors, _layout.Size);
        ArmUsedEvent(slot, wrap);

        // A descriptor already used at the event slot means the device passed it before it saw the request and will not
        // notify; nothing in flight, nothing to wait for.
        if (_batchRemaining != 0 || _inFlightDescriptors == 0)
        {
            return _batchRemaining == 0;
        }

        _dma.SyncForCpu(_ring.Slice(_layout.DescriptorOffset(slot), PackedRing.DescriptorSize));
        return !PackedRing.IsUsed(SharedMemory.ReadUInt16(DescriptorFlags(slot)), wrap);
    }

    // Asks for a used-buffer notification at (slot, wrap) with EVENT_IDX (desc_event_off/wrap, then
    // RING_EVENT_FLAGS_DESC), at the next used descriptor without it (RING_EVENT_FLAGS_ENABLE), and makes the request
    // visible before the caller re-reads the ring. Ref: virtio v1.2 §2.8.10, §2.8.22.
    private void ArmUsedEvent(int slot, bool wrap)
    {
        ThrowIfUnusable();
        _interruptsSuppressed = false;
        if (_eventIdx)
        {
            WriteDriverOffWrap(PackedRing.EventOffWrap(slot, wrap));

            // The slot named must be visible no later than the flags that make the device look at it: the flags write
            // below is a release store.
            WriteDriverEventFlags(PackedRing.RingEventFlagsDesc);
        }
        else
        {
            WriteDriverEventFlags(PackedRing.RingEventFlagsEnable);
        }

        _dma.SyncForDevice(_driverEventRegion);

        // The request must be visible before the ring is re-read: a descriptor the device used before it saw the
        // request raises no interrupt, so the caller has to see it instead.
        SharedMemory.FullBarrier();
    }

    /// <inheritdoc />
    /// <remarks>The next available slot in next_off and the Driver Ring Wrap Counter in next_wrap (§2.9).</remarks>
    public uint GetNotificationData() => (uint)QueueIndex | ((uint)PackedRing.EventOffWrap(_nextAvail, _availWrap) << 16);

    /// <summary>True when the queue was set up for VIRTIO_F_IN_ORDER.</summary>
    public bool InOrder => _inOrder;

    /// <inheritdoc />
    /// <remarks>
    /// Works on a broken queue. Afterwards the queue is as new (slot 0, wrap counters 1, ring and event structures
    /// zeroed, every ID free), which matches a device that has been reset, so it can be activated again; a broken
    /// queue stays broken.
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
        for (int id = 0; id < _descriptorCount.Length; id++)
        {
            if (_descriptorCount[id] != 0)
            {
                tokens[count++] = _tokens[id];
            }
        }

        _ring.Span.Clear();
        ResetDriverState();
        _dma.SyncForDevice(_ring);
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
    /// <remarks>
    /// A packed ring has no used index in shared memory: <see cref="VirtqueueState.DeviceUsedIndex"/> and
    /// <see cref="VirtqueueState.LastUsedIndex"/> are both the next used slot, <see cref="VirtqueueState.AvailableIndex"/>
    /// the next available slot, <see cref="VirtqueueState.UsedEvent"/> and <see cref="VirtqueueState.AvailEvent"/> the
    /// driver's and device's desc_event_off/wrap (EVENT_IDX only).
    /// </remarks>
    public VirtqueueState GetState()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _dma.SyncForCpu(_deviceEventRegion);
        ushort deviceFlags = SharedMemory.ReadUInt16(_deviceEventFlags);
        return new VirtqueueState
        {
            QueueIndex = QueueIndex,
            Layout = "packed",
            Size = _layout.Size,
            AvailableIndex = (ushort)_nextAvail,
            DeviceUsedIndex = (ushort)_nextUsed,
            LastUsedIndex = (ushort)_nextUsed,
            FreeDescriptors = _freeDescriptors,
            Outstanding = _outstanding,
            InterruptsSuppressed = _interruptsSuppressed,
            NotificationsSuppressed = (deviceFlags & PackedRing.EventFlagsMask) == PackedRing.RingEventFlagsDisable,
            UsedEvent = _eventIdx ? _driverEventOffWrapShadow : null,
            AvailEvent = _eventIdx ? SharedMemory.ReadUInt16(_deviceEventOffWrap) : null,
            DescriptorArea = DescriptorArea,
            DriverArea = DriverArea,
            DeviceArea = DeviceArea,
            BrokenReason = _brokenReason,
            ChainsReturnedInBatches = _inOrder ? _chainsReturnedInBatches : null,
            AvailWrapCounter = _availWrap,
            UsedWrapCounter = _usedWrap,
            DriverEventFlags = _driverEventFlagsShadow,
            DeviceEventFlags = deviceFlags,
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

        // Stacked so that IDs are handed out 0, 1, 2, ... from a fresh queue, which makes dumps easy to follow.
        for (int i = 0; i < size; i++)
        {
            _freeIds[i] = (ushort)(size - 1 - i);
        }

        _freeIdCount = size;
        Array.Clear(_tokens);
        Array.Clear(_descriptorCount);
        Array.Clear(_writableCapacity);
        Array.Clear(_published);
        Array.Clear(_headSlot);
        Array.Clear(_headFlags);
        _pendingCount = 0;
        _unpublishedDescriptors = 0;
        _freeDescriptors = size;
        _inFlightDescriptors = 0;
        _outstanding = 0;

        // §2.8.1: both wrap counters start at 1.
        _nextAvail = 0;
        _availWrap = true;
        _nextUsed = 0;
        _usedWrap = true;
        _interruptsSuppressed = false;
        _batchRemaining = 0;
        _batchLastLength = 0;
        Array.Clear(_idAtSlot);

        // With EVENT_IDX, ask for an interrupt at the first used slot, the packed form of used_event = 0; without it,
        // RING_EVENT_FLAGS_ENABLE (0), which the zeroed memory already says.
        _driverEventOffWrapShadow = 0;
        _driverEventFlagsShadow = 0;
        if (_eventIdx)
        {
            WriteDriverOffWrap(PackedRing.EventOffWrap(0, wrap: true));
            WriteDriverEventFlags(PackedRing.RingEventFlagsDesc);
        }
        else
        {
            WriteDriverEventFlags(PackedRing.RingEventFlagsEnable);
        }

        _dma.SyncForDevice(_driverEventRegion);
    }

    // Reads the descriptor at the next used slot: false when the device has not used it yet, else its Buffer ID (checked:
    // in range and in flight) and length. A slot that is neither the driver's nor a used one breaks the queue.
    private bool TryReadUsedDescriptor(out ushort id, out uint length)
    {
        if (!SyncNextUsedForCpu())
        {
            id = 0;
            length = 0;
            return false;
        }

        nint descriptor = _descriptorRing + _layout.DescriptorOffset(_nextUsed);
        ushort flags = SharedMemory.ReadUInt16(descriptor + PackedRing.DescriptorFlagsOffset);
        if (!PackedRing.IsUsed(flags, _usedWrap))
        {
            // While chains are in flight the slot holds what the driver wrote this lap (AVAIL = the wrap counter) or
            // the device's used descriptor (both bits = the wrap counter). Any other AVAIL bit is a device write that
            // is neither.
            if (_inFlightDescriptors > 0 && ((flags & PackedRing.DescFlagAvail) != 0) != _usedWrap)
            {
                ThrowWrongWrap(flags);
            }

            id = 0;
            length = 0;
            return false;
        }

        // Stale descriptors of earlier laps carry the other wrap counter, so a used one here is the device's, and
        // the device has nothing to return.
        if (_inFlightDescriptors == 0)
        {
            ThrowUsedWithNothingInFlight(flags);
        }

        // The flags that say the descriptor is used must be read before its id and len (§2.8.22): the flags read above
        // is an acquire load, so these reads cannot move before it.
        id = SharedMemory.ReadUInt16(descriptor + PackedRing.DescriptorIdOffset);
        length = SharedMemory.ReadUInt32(descriptor + PackedRing.DescriptorLenOffset);
        if (id >= _layout.Size)
        {
            ThrowUsedIdOutOfRange(id);
        }

        if (!_published[id])
        {
            ThrowUsedIdNotInFlight(id);
        }

        return true;
    }

    // TryTakeUsed with VIRTIO_F_IN_ORDER. A used descriptor opens a batch: it sits at the slot of the batch's first chain
    // and names the Buffer ID of its last; the device skipped the rest of the batch. The chains are handed out oldest
    // first, one per call, and the used descriptor is read once per batch. Ref: virtio v1.2 §2.8.9.
    private bool TryTakeUsedInOrder(out UsedBuffer used)
    {
        if (_batchRemaining == 0)
        {
            if (!TryReadUsedDescriptor(out ushort id, out uint length))
            {
                used = default;
                return false;
            }

            // Walk the driver's record from the oldest chain in flight (its head is the next used slot) to the ID named,
            // never past the descriptors in flight. An ID in flight is always reached; the bound guards the record.
            int slot = _nextUsed;
            int walked = 0;
            int batch = 1;
            ushort current = _idAtSlot[slot];
            while (current != id)
            {
                walked += _descriptorCount[current];
                if (walked >= _inFlightDescriptors)
                {
                    ThrowUsedIdNotInBatch(id);
                }

                slot += _descriptorCount[current];
                if (slot >= _layout.Size)
                {
                    slot -= _layout.Size;
                }

                current = _idAtSlot[slot];
                batch++;
            }

            if (_writableCapacity[id] == 0)
            {
                length = 0;
            }
            else if (length > _writableCapacity[id])
            {
                ThrowUsedLengthTooLarge(id, length);
            }

            _batchRemaining = batch;
            _batchLastLength = length;
            _chainsReturnedInBatches += batch - 1;
        }

        // §2.8.9: the chains a batch skipped were used completely, so their length is their writable capacity.
        ushort oldest = _idAtSlot[_nextUsed];
        uint taken = _batchRemaining == 1 ? _batchLastLength : _writableCapacity[oldest];
        int token = _tokens[oldest];
        int descriptors = _descriptorCount[oldest];
        _published[oldest] = false;
        _descriptorCount[oldest] = 0;
        _tokens[oldest] = 0;
        _writableCapacity[oldest] = 0;
        _freeIds[_freeIdCount++] = oldest;
        _freeDescriptors += descriptors;
        _inFlightDescriptors -= descriptors;
        _outstanding--;
        _batchRemaining--;

        // Skip by the count the driver recorded, never by anything the device wrote.
        _nextUsed += descriptors;
        if (_nextUsed >= _layout.Size)
        {
            _nextUsed -= _layout.Size;
            _usedWrap = !_usedWrap;
        }

        // Inside a batch the next slot was skipped by the device and never becomes used: the interrupt is asked for at
        // the slot after the batch, once the batch is handed out. As in TryTakeUsed, visible before the next flags read.
        if (_eventIdx && !_interruptsSuppressed && _batchRemaining == 0)
        {
            WriteDriverOffWrap(PackedRing.EventOffWrap(_nextUsed, _usedWrap));
            _dma.SyncForDevice(_driverEventRegion);
            SharedMemory.FullBarrier();
        }

        used = new UsedBuffer(token, (int)taken);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool NextIsUsed()
    {
        return SyncNextUsedForCpu() && PackedRing.IsUsed(SharedMemory.ReadUInt16(DescriptorFlags(_nextUsed)), _usedWrap);
    }

    // The Descriptor Ring is written by both sides (§2.8), so each sync covers only the slots one side owns: a wider
    // clean would write the driver's stale copies over used descriptors, a wider invalidate would drop descriptors the
    // driver wrote and has not cleaned yet. A no-op on cache-coherent platforms.

    // Cleans the slots of the chains added since the last KickPrepare, the only slots the driver wrote since its last
    // clean; the device does not write them, since it has not seen them available.
    private void SyncPendingForDevice()
    {
        int count = _unpublishedDescriptors;
        int first = _nextAvail - count;
        if (first < 0)
        {
            first += _layout.Size;
        }

        int run = Math.Min(count, _layout.Size - first);
        _dma.SyncForDevice(_ring.Slice(_layout.DescriptorOffset(first), run * PackedRing.DescriptorSize));
        if (run < count)
        {
            _dma.SyncForDevice(_ring.Slice(_layout.DescriptorOffset(0), (count - run) * PackedRing.DescriptorSize));
        }
    }

    // Invalidates the descriptor at the next used slot, the one the driver reads next. Returns false, without touching
    // it, when that slot starts a chain added but not yet made available (nothing in flight, something pending): it is
    // the driver's, not cleaned yet, and cannot have been used.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool SyncNextUsedForCpu()
    {
        if (_inFlightDescriptors == 0 && _unpublishedDescriptors > 0)
        {
            return false;
        }

        _dma.SyncForCpu(_ring.Slice(_layout.DescriptorOffset(_nextUsed), PackedRing.DescriptorSize));
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AdvanceAvail(int count)
    {
        _nextAvail += count;
        if (_nextAvail >= _layout.Size)
        {
            // §2.8.1: the Driver Ring Wrap Counter flips after the last descriptor of the ring is made available.
            _nextAvail -= _layout.Size;
            _availWrap = !_availWrap;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private nint DescriptorFlags(int slot) => _descriptorRing + _layout.DescriptorOffset(slot) + PackedRing.DescriptorFlagsOffset;

    // Writes a ring descriptor's addr, len and id; its flags, which hand it to the device, are the caller's.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteDescriptorBody(int slot, ulong address, uint length, ushort id)
    {
        nint descriptor = _descriptorRing + _layout.DescriptorOffset(slot);
        SharedMemory.WriteUInt64(descriptor + PackedRing.DescriptorAddrOffset, address);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, length);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, id);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteDescriptor(nint descriptor, ulong address, uint length, ushort id, ushort flags)
    {
        SharedMemory.WriteUInt64(descriptor + PackedRing.DescriptorAddrOffset, address);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, length);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, id);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorFlagsOffset, flags);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteDriverOffWrap(ushort value)
    {
        _driverEventOffWrapShadow = value;
        SharedMemory.WriteUInt16(_driverEventOffWrap, value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteDriverEventFlags(ushort value)
    {
        _driverEventFlagsShadow = value;
        SharedMemory.WriteUInt16(_driverEventFlags, value);
    }

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
    private void ThrowWrongWrap(ushort flags)
        => Break(
            $"the descriptor at slot {_nextUsed} has flags 0x{flags:x4}, whose AVAIL bit does not match the wrap counter " +
            $"{(_usedWrap ? 1 : 0)} of the current lap while {_inFlightDescriptors} descriptors are in flight: " +
            "it is neither the driver's available descriptor nor a used one.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedWithNothingInFlight(ushort flags)
        => Break($"the descriptor at slot {_nextUsed} is marked used (flags 0x{flags:x4}) but no chain is in flight.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIdOutOfRange(ushort id)
        => Break($"the used descriptor at slot {_nextUsed} names buffer {id}, but the ring has only {_layout.Size} buffer IDs.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIdNotInFlight(ushort id)
        => Break($"the used descriptor at slot {_nextUsed} names buffer {id}, which is not in flight.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedIdNotInBatch(ushort id)
        => Break(
            $"the used descriptor at slot {_nextUsed} names buffer {id}, which is not among the {_inFlightDescriptors} descriptors " +
            "in flight from the oldest chain on; with VIRTIO_F_IN_ORDER a batch ends at a chain at or after the oldest one (§2.8.9).");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowUsedLengthTooLarge(ushort id, uint length)
        => Break(
            $"the used descriptor at slot {_nextUsed} says the device wrote {length} bytes into buffer {id}, " +
            $"whose device-writable elements hold only {_writableCapacity[id]} bytes.");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadChainLength(int count, int size, string paramName)
        => throw new ArgumentException($"A chain must hold 1 to {size} buffers (the queue size); this one holds {count}.", paramName);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowReadableAfterWritable(int index, string paramName)
        => throw new ArgumentException(
            $"Buffer {index} of the chain is device-readable but follows a device-writable one; readable buffers must come first (virtio v1.2 §2.8.17).",
            paramName);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowWritableTooLarge(ulong writable, string paramName)
        => throw new ArgumentException($"The chain's device-writable buffers total {writable} bytes, more than {int.MaxValue}.", paramName);
}
