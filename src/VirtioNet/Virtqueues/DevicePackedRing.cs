namespace VirtioNet.Virtqueues;

/// <summary>
/// The device side of a packed virtqueue: takes chains whose first descriptor is available under the device's wrap
/// counter, following NEXT through consecutive slots or INDIRECT into one table with every slot, id, address and length
/// checked, writes one used descriptor per chain (or per in-order batch) and skips by the descriptors it held, and keeps
/// the Device Event Suppression structure and the driver's rule for interrupts. Ref: virtio v1.2 §2.8.
/// </summary>
/// <remarks>
/// <para>
/// The driver is not trusted: a list that runs into a slot that is not available, is longer than the ring or the
/// caller's span, a Buffer ID the device still holds, an indirect table that follows NEXT, sits
/// inside a list, has flags other than WRITE in its entries or a length that is not whole descriptors, a readable
/// buffer after a writable one, or any address outside <see cref="IDeviceMemory"/> makes <see cref="TryPop"/> throw
/// <see cref="Core.VirtioException"/> with <see cref="Core.VirtioErrorReason.DeviceMisbehaved"/> and leaves the chain
/// untaken (the device's position does not move).
/// </para>
/// <para>Memory is touched through <see cref="SharedMemory"/> at <see cref="PackedRing"/> offsets. Not thread-safe.</para>
/// </remarks>
public sealed class DevicePackedRing
{
    // CPU addresses of the Descriptor Ring and of the driver's and the device's Event Suppression structures.
    private readonly nint _ring;
    private readonly nint _driverEvent;
    private readonly nint _deviceEvent;

    private readonly IDeviceMemory _memory;

    // Per Buffer ID the device took and has not returned: the ring descriptors of its chain. A Buffer ID is any 16-bit
    // value the driver chooses (§2.8.6 asks only that it be unique among outstanding chains), so a map, sized for the
    // most chains a ring can hold, not an array indexed by it; adding and removing allocate nothing once it has grown.
    private readonly Dictionary<ushort, int> _descriptorsOf;

    // The next slot to poll for an available descriptor, and the device's wrap counter for it. §2.8.1.
    private int _availSlot;
    private bool _availWrap = true;

    // The slot the next used descriptor goes to, and the Device Ring Wrap Counter. §2.8.1.
    private int _usedSlot;
    private bool _usedWrap = true;

    // Descriptors marked used since the device last decided whether to interrupt.
    private int _usedSinceSignal;

    /// <summary>Attaches to the ring whose three areas the driver gave.</summary>
    /// <param name="memory">How device addresses reach memory.</param>
    /// <param name="size">The queue size the driver set (1 to 32768).</param>
    /// <param name="descriptorArea">Device address of the Descriptor Ring.</param>
    /// <param name="driverArea">Device address of the Driver Event Suppression structure.</param>
    /// <param name="deviceArea">Device address of the Device Event Suppression structure.</param>
    /// <param name="eventIdx">
    /// VIRTIO_F_EVENT_IDX was negotiated: the device names the next slot it polls (RING_EVENT_FLAGS_DESC), as QEMU does,
    /// and honours the driver's named slot for interrupts.
    /// </param>
    /// <exception cref="Core.VirtioException">A size the packed format does not allow, or an area outside device memory.</exception>
    public DevicePackedRing(IDeviceMemory memory, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea, bool eventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var layout = new PackedQueueLayout(size);
        Size = size;
        EventIdx = eventIdx;
        _memory = memory;
        _ring = DeviceChainBuilder.Area(memory, descriptorArea, layout.DescriptorRingLength, "descriptor ring");
        _driverEvent = DeviceChainBuilder.Area(memory, driverArea, PackedRing.EventSuppressionSize, "driver event suppression structure");
        _deviceEvent = DeviceChainBuilder.Area(memory, deviceArea, PackedRing.EventSuppressionSize, "device event suppression structure");
        _descriptorsOf = new Dictionary<ushort, int>(size);
        if (eventIdx)
        {
            DeviceEventOffWrap = PackedRing.EventOffWrap(0, wrap: true);
            DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        }
    }

    /// <summary>The queue size.</summary>
    public int Size { get; }

    /// <summary>VIRTIO_F_EVENT_IDX was negotiated.</summary>
    public bool EventIdx { get; }

    /// <summary>With <see cref="EventIdx"/>, name the next slot to poll in the device's structure after each chain taken. Default true.</summary>
    public bool PublishAvailEventOnPop { get; set; } = true;

    /// <summary>The next slot the device polls for an available descriptor.</summary>
    public int AvailSlot => _availSlot;

    /// <summary>The wrap counter the device expects at <see cref="AvailSlot"/>.</summary>
    public bool AvailWrap => _availWrap;

    /// <summary>The slot the next used descriptor goes to.</summary>
    public int UsedSlot => _usedSlot;

    /// <summary>The Device Ring Wrap Counter.</summary>
    public bool UsedWrap => _usedWrap;

    /// <summary>True when the descriptor at <see cref="AvailSlot"/> is available.</summary>
    public bool HasAvailable => PackedRing.IsAvailable(RawFlags(_availSlot), _availWrap);

    /// <summary>desc_event_flags of the Device Event Suppression structure, which the device writes.</summary>
    public ushort DeviceEventFlags
    {
        get => SharedMemory.ReadUInt16(_deviceEvent + PackedRing.EventFlagsOffset);
        set => SharedMemory.WriteUInt16(_deviceEvent + PackedRing.EventFlagsOffset, value);
    }

    /// <summary>desc_event_off/wrap of the Device Event Suppression structure, which the device writes.</summary>
    public ushort DeviceEventOffWrap
    {
        get => SharedMemory.ReadUInt16(_deviceEvent + PackedRing.EventOffWrapOffset);
        set => SharedMemory.WriteUInt16(_deviceEvent + PackedRing.EventOffWrapOffset, value);
    }

    /// <summary>desc_event_flags of the Driver Event Suppression structure, as the driver wrote it.</summary>
    public ushort DriverEventFlags => SharedMemory.ReadUInt16(_driverEvent + PackedRing.EventFlagsOffset);

    /// <summary>desc_event_off/wrap of the Driver Event Suppression structure, as the driver wrote it.</summary>
    public ushort DriverEventOffWrap => SharedMemory.ReadUInt16(_driverEvent + PackedRing.EventOffWrapOffset);

    /// <summary>The flags of the ring descriptor at <paramref name="slot"/> as they are in memory now.</summary>
    public ushort RawFlags(int slot) => SharedMemory.ReadUInt16(Descriptor(_ring, CheckSlot(slot)) + PackedRing.DescriptorFlagsOffset);

    /// <summary>The id of the ring descriptor at <paramref name="slot"/> as it is in memory now.</summary>
    public ushort RawId(int slot) => SharedMemory.ReadUInt16(Descriptor(_ring, CheckSlot(slot)) + PackedRing.DescriptorIdOffset);

    /// <summary>Ring descriptors of the chain with Buffer ID <paramref name="id"/> that the device holds, 0 when none.</summary>
    public int DescriptorsHeld(ushort id) => _descriptorsOf.GetValueOrDefault(id);

    /// <summary>
    /// Takes the next available chain into <paramref name="buffers"/>, or returns false when the descriptor at the poll
    /// slot is not available.
    /// </summary>
    /// <param name="buffers">Room for the chain's buffers; its length is the longest chain accepted.</param>
    /// <param name="chain">The chain's Buffer ID, buffer count, ring descriptors and shape.</param>
    /// <exception cref="Core.VirtioException">The chain is malformed (see the remarks on the type); it stays untaken.</exception>
    public bool TryPop(Span<DeviceBuffer> buffers, out DeviceRingChain chain)
    {
        // §2.8.1: the head's flags hand the chain over; they are read first (an acquire), the rest of the chain after.
        nint headDescriptor = Descriptor(_ring, _availSlot);
        ushort headFlags = SharedMemory.ReadUInt16(headDescriptor + PackedRing.DescriptorFlagsOffset);
        if (!PackedRing.IsAvailable(headFlags, _availWrap))
        {
            chain = default;
            return false;
        }

        var builder = new DeviceChainBuilder(_memory, buffers);
        ushort id;
        int descriptors;
        bool indirect = (headFlags & PackedRing.DescFlagIndirect) != 0;
        if (indirect)
        {
            if ((headFlags & PackedRing.DescFlagNext) != 0)
            {
                DeviceChainBuilder.ThrowMalformed($"VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT at slot {_availSlot}");
            }

            (nint table, int entries) = builder.IndirectTable(headDescriptor, Size);
            for (int i = 0; i < entries; i++)
            {
                // §2.8.7: the table's entries are read in sequence; WRITE is the only flag a driver may set in them.
                nint entry = Descriptor(table, i);
                ushort flags = SharedMemory.ReadUInt16(entry + PackedRing.DescriptorFlagsOffset);
                if ((flags & ~PackedRing.DescFlagWrite) != 0)
                {
                    DeviceChainBuilder.ThrowMalformed($"indirect entry {i} with flags 0x{flags:x4} (only VIRTQ_DESC_F_WRITE is allowed)");
                }

                builder.AddDescriptor(entry, (flags & PackedRing.DescFlagWrite) != 0);
            }

            id = SharedMemory.ReadUInt16(headDescriptor + PackedRing.DescriptorIdOffset);
            descriptors = 1;
        }
        else
        {
            int slot = _availSlot;
            bool wrap = _availWrap;
            descriptors = 0;
            while (true)
            {
                if (descriptors >= Size)
                {
                    DeviceChainBuilder.ThrowMalformed($"a descriptor list longer than the ring of {Size}");
                }

                nint descriptor = Descriptor(_ring, slot);
                ushort flags = SharedMemory.ReadUInt16(descriptor + PackedRing.DescriptorFlagsOffset);
                if (!PackedRing.IsAvailable(flags, wrap))
                {
                    DeviceChainBuilder.ThrowMalformed($"a list continuing into slot {slot}, whose flags 0x{flags:x4} are not available for wrap {wrap}");
                }

                if ((flags & PackedRing.DescFlagIndirect) != 0)
                {
                    DeviceChainBuilder.ThrowMalformed($"VIRTQ_DESC_F_INDIRECT inside a list linked by VIRTQ_DESC_F_NEXT, at slot {slot}");
                }

                builder.AddDescriptor(descriptor, (flags & PackedRing.DescFlagWrite) != 0);

                // §2.8.6: the Buffer ID is in the last descriptor of the list.
                id = SharedMemory.ReadUInt16(descriptor + PackedRing.DescriptorIdOffset);
                descriptors++;
                Advance(ref slot, ref wrap, 1);
                if ((flags & PackedRing.DescFlagNext) == 0)
                {
                    break;
                }
            }
        }

        if (!_descriptorsOf.TryAdd(id, descriptors))
        {
            DeviceChainBuilder.ThrowMalformed($"Buffer ID {id} made available again while the device still holds it");
        }

        Advance(ref _availSlot, ref _availWrap, descriptors);
        if (EventIdx && PublishAvailEventOnPop)
        {
            DeviceEventOffWrap = PackedRing.EventOffWrap(_availSlot, _availWrap);
            DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        }

        chain = new DeviceRingChain(id, builder.Count, descriptors, indirect);
        return true;
    }

    /// <summary>
    /// Returns the chain with Buffer ID <paramref name="id"/>: a used descriptor at the used slot, then a skip over the
    /// descriptors it held (§2.8.6).
    /// </summary>
    /// <param name="id">A Buffer ID the device took and holds.</param>
    /// <param name="length">Bytes the device wrote into the chain.</param>
    /// <param name="written">Set VIRTQ_DESC_F_WRITE: the chain had writable buffers (§2.8.4), as QEMU marks it.</param>
    /// <exception cref="InvalidOperationException">The device does not hold <paramref name="id"/> (a bug of the caller).</exception>
    public void Complete(ushort id, uint length, bool written) => PushUsed(id, length, Release(id), written);

    /// <summary>
    /// Returns the chains with Buffer IDs <paramref name="ids"/>, taken in this order, as one VIRTIO_F_IN_ORDER batch: a
    /// single used descriptor naming the last with <paramref name="lastLength"/>, then a skip over every descriptor of
    /// the batch (§2.8.9).
    /// </summary>
    /// <exception cref="InvalidOperationException">The batch is empty or names a chain the device does not hold.</exception>
    public void CompleteInOrderBatch(ReadOnlySpan<ushort> ids, uint lastLength, bool written)
    {
        if (ids.IsEmpty)
        {
            throw new InvalidOperationException("An in-order batch needs at least one chain.");
        }

        int skip = 0;
        foreach (ushort id in ids)
        {
            skip += Release(id);
        }

        PushUsed(ids[^1], lastLength, skip, written);
    }

    /// <summary>
    /// Writes a used descriptor with any id and length at the used slot, marked used under the device's wrap counter,
    /// and skips <paramref name="skip"/> slots: the raw operation behind <see cref="Complete"/>, and a way to lie.
    /// </summary>
    public void PushUsed(ushort id, uint length, int skip = 1, bool written = true)
    {
        ushort flags = PackedRing.UsedFlags(_usedWrap);
        if (written)
        {
            flags |= PackedRing.DescFlagWrite;
        }

        PushRawUsed(id, length, flags);
        Advance(ref _usedSlot, ref _usedWrap, skip);
        _usedSinceSignal += skip;
    }

    /// <summary>Writes a descriptor with any id, length and flags at the used slot without moving on: a way to lie about flag bits.</summary>
    public void PushRawUsed(ushort id, uint length, ushort flags)
    {
        nint descriptor = Descriptor(_ring, _usedSlot);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, id);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, length);

        // id and len before the flags that hand the descriptor back (the flags' write is a release); then the flags
        // before the driver's event structure is read to decide on an interrupt.
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorFlagsOffset, flags);
        SharedMemory.FullBarrier();
    }

    /// <summary>
    /// Whether the descriptors marked used since the last call deserve a used-buffer notification, per the Driver Event
    /// Suppression structure: DISABLE never, DESC (with EVENT_IDX) when the named slot was passed, otherwise always.
    /// Ref: virtio v1.2 §2.8.10.
    /// </summary>
    public bool TakeInterruptDecision()
    {
        int count = _usedSinceSignal;
        _usedSinceSignal = 0;
        if (count == 0)
        {
            return false;
        }

        ushort flags = (ushort)(DriverEventFlags & PackedRing.EventFlagsMask);
        if (flags == PackedRing.RingEventFlagsDisable)
        {
            return false;
        }

        if (flags == PackedRing.RingEventFlagsDesc && EventIdx)
        {
            // More than a lap since the last decision passes every slot.
            return count >= Size || PackedRing.NeedEvent(DriverEventOffWrap, _usedSlot, _usedWrap, count, Size);
        }

        return true;
    }

    // Forgets that the device holds id; returns the descriptors the chain held.
    private int Release(ushort id)
    {
        int descriptors = DescriptorsHeld(id);
        if (descriptors == 0)
        {
            throw new InvalidOperationException($"The device does not hold Buffer ID {id}.");
        }

        _descriptorsOf.Remove(id);
        return descriptors;
    }

    private void Advance(ref int slot, ref bool wrap, int count)
    {
        slot += count;
        while (slot >= Size)
        {
            slot -= Size;
            wrap = !wrap;
        }
    }

    private int CheckSlot(int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, Size);
        return slot;
    }

    private static nint Descriptor(nint table, int index) => table + (index * PackedRing.DescriptorSize);
}
