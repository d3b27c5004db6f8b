namespace VirtioNet.Virtqueues;

/// <summary>
/// The device side of a split virtqueue: takes the chains the driver made available, following next links and indirect
/// tables with every index, address and length checked, publishes used entries, and keeps the device's half of event
/// suppression (avail_event, VIRTQ_USED_F_NO_NOTIFY) and the used_event rule for interrupts. Ref: virtio v1.2 §2.7.
/// </summary>
/// <remarks>
/// <para>
/// The driver is not trusted: an available index more than a ring ahead, a head or next index outside the table, a
/// chain that loops or is longer than the caller's span, an indirect table that nests, follows NEXT, or has a length
/// that is not whole descriptors, a readable buffer after a writable one, or any address outside
/// <see cref="IDeviceMemory"/> makes <see cref="TryPop"/> throw <see cref="Core.VirtioException"/> with
/// <see cref="Core.VirtioErrorReason.DeviceMisbehaved"/> (the other side of the ring broke it) and leaves the entry
/// untaken. Every walk is bounded by the span's length, so no input makes it loop.
/// </para>
/// <para>
/// Memory is touched through <see cref="SharedMemory"/> at the offsets of <see cref="SplitQueueLayout"/>, each area by
/// its own address as a modern device reaches them. Not thread-safe: one device thread serves a ring.
/// </para>
/// </remarks>
public sealed class DeviceSplitRing
{
    // Field offsets; the areas' own offsets in a block are subtracted since each area is reached by its own address.
    private readonly SplitQueueLayout _layout;

    // CPU addresses of the descriptor table, the available ring and the used ring.
    private readonly nint _descriptors;
    private readonly nint _available;
    private readonly nint _used;

    private readonly IDeviceMemory _memory;

    // The next available-ring index to take (last_avail_idx in QEMU).
    private ushort _lastAvail;

    // The device's used.idx, of which the ring holds a copy.
    private ushort _usedIdx;

    // used.idx when the device last decided whether to interrupt.
    private ushort _signalledUsed;

    /// <summary>Attaches to the ring whose three areas the driver gave.</summary>
    /// <param name="memory">How device addresses reach memory.</param>
    /// <param name="size">The queue size the driver set (a power of two up to 32768).</param>
    /// <param name="descriptorArea">Device address of the descriptor table.</param>
    /// <param name="driverArea">Device address of the available ring.</param>
    /// <param name="deviceArea">Device address of the used ring.</param>
    /// <param name="eventIdx">VIRTIO_F_EVENT_IDX was negotiated: used_event decides interrupts, avail_event is kept.</param>
    /// <exception cref="Core.VirtioException">A size the split format does not allow, or an area outside device memory.</exception>
    public DeviceSplitRing(IDeviceMemory memory, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea, bool eventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _layout = new SplitQueueLayout(size);
        _memory = memory;
        EventIdx = eventIdx;
        _descriptors = DeviceChainBuilder.Area(memory, descriptorArea, _layout.DescriptorTableLength, "descriptor table");
        _available = DeviceChainBuilder.Area(memory, driverArea, _layout.AvailableRingLength, "available ring");
        _used = DeviceChainBuilder.Area(memory, deviceArea, _layout.UsedRingLength, "used ring");
    }

    /// <summary>The queue size.</summary>
    public int Size => _layout.Size;

    /// <summary>VIRTIO_F_EVENT_IDX was negotiated.</summary>
    public bool EventIdx { get; }

    /// <summary>With <see cref="EventIdx"/>, write avail_event = the next entry after each chain taken, as QEMU does. Default true.</summary>
    public bool PublishAvailEventOnPop { get; set; } = true;

    /// <summary>The next available-ring index the device takes.</summary>
    public ushort LastAvailIdx => _lastAvail;

    /// <summary>The device's used.idx.</summary>
    public ushort UsedIdx => _usedIdx;

    /// <summary>virtq_avail.idx as the driver last published it.</summary>
    public ushort AvailIdx => SharedMemory.ReadUInt16(_available + SplitRing.AvailIdxOffset);

    /// <summary>virtq_avail.flags as the driver wrote it.</summary>
    public ushort AvailFlags => SharedMemory.ReadUInt16(_available + SplitRing.AvailFlagsOffset);

    /// <summary>used_event as the driver wrote it. Ref: virtio v1.2 §2.7.7.</summary>
    public ushort UsedEvent => SharedMemory.ReadUInt16(_available + (_layout.UsedEventOffset - _layout.AvailableRingOffset));

    /// <summary>avail_event, which the device writes to say after which entry it wants a notification. Ref: virtio v1.2 §2.7.10.</summary>
    public ushort AvailEvent
    {
        get => SharedMemory.ReadUInt16(_used + (_layout.AvailEventOffset - _layout.UsedRingOffset));
        set => SharedMemory.WriteUInt16(_used + (_layout.AvailEventOffset - _layout.UsedRingOffset), value);
    }

    /// <summary>VIRTQ_USED_F_NO_NOTIFY in virtq_used.flags.</summary>
    public bool NoNotify
    {
        get => (SharedMemory.ReadUInt16(_used + SplitRing.UsedFlagsOffset) & SplitRing.UsedFlagNoNotify) != 0;
        set => SharedMemory.WriteUInt16(_used + SplitRing.UsedFlagsOffset, value ? SplitRing.UsedFlagNoNotify : (ushort)0);
    }

    /// <summary>Entries the driver published and the device has not taken.</summary>
    /// <exception cref="Core.VirtioException">The available index is more than a ring ahead (§2.7.6): a broken ring.</exception>
    public int PendingAvailable
    {
        get
        {
            ushort availIdx = AvailIdx;
            int pending = (ushort)(availIdx - _lastAvail);
            if (pending > Size)
            {
                DeviceChainBuilder.ThrowMalformed($"an available index {availIdx} that is {pending} entries ahead of {_lastAvail} in a ring of {Size}");
            }

            return pending;
        }
    }

    /// <summary>
    /// Takes the next available chain into <paramref name="buffers"/>, or returns false when the driver published none.
    /// </summary>
    /// <param name="buffers">Room for the chain's buffers; its length is the longest chain accepted.</param>
    /// <param name="chain">The chain's head (its used id), buffer count and shape.</param>
    /// <exception cref="Core.VirtioException">The chain is malformed (see the remarks on the type); it stays untaken.</exception>
    public bool TryPop(Span<DeviceBuffer> buffers, out DeviceRingChain chain)
    {
        if (PendingAvailable == 0)
        {
            chain = default;
            return false;
        }

        // avail.idx was read (an acquire) before the entry it covers.
        ushort head = SharedMemory.ReadUInt16(_available + (_layout.AvailEntryOffset(_lastAvail % Size) - _layout.AvailableRingOffset));
        chain = Walk(head, buffers);
        _lastAvail++;
        if (EventIdx && PublishAvailEventOnPop)
        {
            AvailEvent = _lastAvail;
        }

        return true;
    }

    /// <summary>Writes avail_event = the next entry to take: ask to be notified of the very next chain. Ref: virtio v1.2 §2.7.10.</summary>
    public void PublishAvailEvent() => AvailEvent = _lastAvail;

    /// <summary>
    /// Writes a used entry (<paramref name="id"/>, <paramref name="length"/>) at the next used slot, then moves used.idx by
    /// <paramref name="count"/>: 1 for one chain, the batch size for a VIRTIO_F_IN_ORDER batch (§2.7.9). Any values are
    /// written as given (the caller may be a test playing a hostile device).
    /// </summary>
    public void PushUsed(uint id, uint length, int count = 1)
    {
        nint element = _used + (_layout.UsedElemOffset(_usedIdx % Size) - _layout.UsedRingOffset);
        SharedMemory.WriteUInt32(element + SplitRing.UsedElemIdOffset, id);
        SharedMemory.WriteUInt32(element + SplitRing.UsedElemLenOffset, length);

        // The entry is complete before the used.idx that exposes it (§2.7.8); the write of used.idx is a release.
        _usedIdx += (ushort)count;
        SharedMemory.WriteUInt16(_used + SplitRing.UsedIdxOffset, _usedIdx);

        // used.idx is visible before used_event or the flags are read to decide on an interrupt.
        SharedMemory.FullBarrier();
    }

    /// <summary>Publishes any used.idx (a lie when it covers entries never written).</summary>
    public void SetUsedIdx(ushort value)
    {
        _usedIdx = value;
        SharedMemory.WriteUInt16(_used + SplitRing.UsedIdxOffset, value);
    }

    /// <summary>
    /// Whether the entries published since the last call deserve a used-buffer notification: used_event with
    /// EVENT_IDX, else VIRTQ_AVAIL_F_NO_INTERRUPT. Ref: virtio v1.2 §2.7.7.
    /// </summary>
    public bool TakeInterruptDecision()
    {
        bool need = EventIdx
            ? VirtqueueNotification.NeedEvent(UsedEvent, _usedIdx, _signalledUsed)
            : _usedIdx != _signalledUsed && (AvailFlags & SplitRing.AvailFlagNoInterrupt) == 0;
        _signalledUsed = _usedIdx;
        return need;
    }

    // Follows the chain at head: through one indirect table (§2.7.5.3) or through next links (§2.7.5).
    private DeviceRingChain Walk(ushort head, Span<DeviceBuffer> buffers)
    {
        int size = Size;
        if (head >= size)
        {
            DeviceChainBuilder.ThrowMalformed($"an available entry naming descriptor {head} of {size}");
        }

        var builder = new DeviceChainBuilder(_memory, buffers);
        nint headDescriptor = Descriptor(_descriptors, head);
        ushort headFlags = SharedMemory.ReadUInt16(headDescriptor + SplitRing.DescriptorFlagsOffset);
        if ((headFlags & SplitRing.DescFlagIndirect) != 0)
        {
            // §2.7.5.3.1: never INDIRECT with NEXT; the table is whole descriptors, at most a queue's worth.
            if ((headFlags & SplitRing.DescFlagNext) != 0)
            {
                DeviceChainBuilder.ThrowMalformed($"VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT at descriptor {head}");
            }

            (nint table, int entries) = builder.IndirectTable(headDescriptor, size);
            WalkTable(table, entries, 0, ref builder, inIndirect: true);
            return new DeviceRingChain(head, builder.Count, 1, Indirect: true);
        }

        int descriptors = WalkTable(_descriptors, size, head, ref builder, inIndirect: false);
        return new DeviceRingChain(head, builder.Count, descriptors, Indirect: false);
    }

    // Follows next links through a table of entries descriptors from first; returns the descriptors visited. A walk
    // visits at most entries descriptors and at most the builder's capacity, so a loop ends as an error.
    private static int WalkTable(nint table, int entries, int first, ref DeviceChainBuilder builder, bool inIndirect)
    {
        int index = first;
        for (int visited = 1; ; visited++)
        {
            if (visited > entries)
            {
                DeviceChainBuilder.ThrowMalformed($"a chain that loops or runs past its table of {entries} descriptors");
            }

            nint descriptor = Descriptor(table, index);
            ushort flags = SharedMemory.ReadUInt16(descriptor + SplitRing.DescriptorFlagsOffset);
            if ((flags & SplitRing.DescFlagIndirect) != 0)
            {
                DeviceChainBuilder.ThrowMalformed(inIndirect
                    ? "VIRTQ_DESC_F_INDIRECT inside an indirect table"
                    : "VIRTQ_DESC_F_INDIRECT in the middle of a chain");
            }

            builder.AddDescriptor(descriptor, (flags & SplitRing.DescFlagWrite) != 0);
            if ((flags & SplitRing.DescFlagNext) == 0)
            {
                return visited;
            }

            index = SharedMemory.ReadUInt16(descriptor + SplitRing.DescriptorNextOffset);
            if (index >= entries)
            {
                DeviceChainBuilder.ThrowMalformed($"a next index {index} outside a table of {entries} descriptors");
            }
        }
    }

    private static nint Descriptor(nint table, int index) => table + (index * SplitRing.DescriptorSize);
}
