using System.Diagnostics.CodeAnalysis;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// Plays the device side of a packed virtqueue, in software: reads the driver's ring through the device addresses the
/// queue reports (translated by the <see cref="HeapDmaAllocator"/>, as an IOMMU would), pops chains whose first
/// descriptor is available under its own wrap counter, follows NEXT through consecutive slots and INDIRECT into
/// tables, writes payload, writes one used descriptor per chain at its used slot and skips by the chain's length, and
/// writes the Device Event Suppression structure. It checks what the driver wrote and throws
/// <see cref="InvalidOperationException"/> on a driver bug. It can also be told to lie (any id, length, flags or skip)
/// so tests can see the driver survive a hostile device. Ref: virtio v1.2 §2.8.
/// </summary>
/// <remarks>
/// The <see cref="DeviceChain.Head"/> of a chain this device pops is its Buffer ID, the value that goes into the used
/// descriptor.
/// </remarks>
public sealed class SoftwarePackedDevice
{
    private readonly HeapDmaAllocator _memory;
    private readonly int _size;
    private readonly bool _eventIdx;

    // CPU addresses of the three areas (each translated separately, as a device would).
    private readonly nint _ring;
    private readonly nint _driverEvent;
    private readonly nint _deviceEvent;

    // Per Buffer ID: ring descriptors of the chain the device popped and has not completed, 0 when it holds none.
    private readonly int[] _descriptorsOf;

    // The next slot to poll for an available descriptor, and the Device's copy of the wrap counter for it.
    private int _availSlot;
    private bool _availWrap = true;

    // The slot the next used descriptor goes to, and the Device Ring Wrap Counter. §2.8.1.
    private int _usedSlot;
    private bool _usedWrap = true;

    // Descriptors marked used since the device last decided whether to interrupt.
    private int _usedSinceSignal;

    /// <summary>Attaches to the ring of <paramref name="queue"/>.</summary>
    public SoftwarePackedDevice(HeapDmaAllocator memory, IVirtqueue queue, bool eventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(queue);
        _memory = memory;
        _size = queue.Size;
        _eventIdx = eventIdx;
        _ring = memory.Translate(queue.DescriptorArea, PackedRing.DescriptorSize * (long)_size);
        _driverEvent = memory.Translate(queue.DriverArea, PackedRing.EventSuppressionSize);
        _deviceEvent = memory.Translate(queue.DeviceArea, PackedRing.EventSuppressionSize);
        _descriptorsOf = new int[_size];
        if (eventIdx)
        {
            // As QEMU does with EVENT_IDX: ask to hear about the next slot to poll.
            DeviceEventOffWrap = PackedRing.EventOffWrap(0, wrap: true);
            DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        }
    }

    /// <summary>With EVENT_IDX, name the next slot to poll in the device event structure after each pop. Default true.</summary>
    public bool PublishAvailEventOnPop { get; set; } = true;

    /// <summary>Chains popped so far.</summary>
    public int Popped { get; private set; }

    /// <summary>The next slot the device polls for an available descriptor.</summary>
    public int AvailSlot => _availSlot;

    /// <summary>The wrap counter the device expects at <see cref="AvailSlot"/>.</summary>
    public bool AvailWrap => _availWrap;

    /// <summary>The slot the next used descriptor goes to.</summary>
    public int UsedSlot => _usedSlot;

    /// <summary>The Device Ring Wrap Counter.</summary>
    public bool UsedWrap => _usedWrap;

    /// <summary>True when the descriptor at <see cref="AvailSlot"/> is available.</summary>
    public bool HasAvailable => PackedRing.IsAvailable(ReadFlags(_ring, _availSlot), _availWrap);

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
    public ushort RawFlags(int slot) => ReadFlags(_ring, slot);

    /// <summary>The id of the ring descriptor at <paramref name="slot"/> as it is in memory now.</summary>
    public ushort RawId(int slot) => SharedMemory.ReadUInt16(Descriptor(_ring, slot) + PackedRing.DescriptorIdOffset);

    /// <summary>Pops the next available chain, or returns false when the descriptor at the poll slot is not available.</summary>
    public bool TryPop([NotNullWhen(true)] out DeviceChain? chain)
    {
        ushort headFlags = ReadFlags(_ring, _availSlot);
        if (!PackedRing.IsAvailable(headFlags, _availWrap))
        {
            chain = null;
            return false;
        }

        // The head's flags before the rest of the list they expose.
        SharedMemory.FullBarrier();
        var buffers = new List<DeviceBuffer>();
        bool seenWritable = false;
        ushort id;
        int descriptors;
        bool indirect = (headFlags & PackedRing.DescFlagIndirect) != 0;
        if (indirect)
        {
            if ((headFlags & PackedRing.DescFlagNext) != 0)
            {
                throw new InvalidOperationException("Driver bug: VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT.");
            }

            nint head = Descriptor(_ring, _availSlot);
            ulong tableAddress = SharedMemory.ReadUInt64(head + PackedRing.DescriptorAddrOffset);
            uint tableLength = SharedMemory.ReadUInt32(head + PackedRing.DescriptorLenOffset);
            if (tableLength == 0 || tableLength % PackedRing.DescriptorSize != 0 || tableLength / PackedRing.DescriptorSize > _size)
            {
                throw new InvalidOperationException($"Driver bug: indirect table of {tableLength} bytes.");
            }

            nint table = _memory.Translate(tableAddress, tableLength);
            for (int i = 0; i < tableLength / PackedRing.DescriptorSize; i++)
            {
                // §2.8.19: WRITE is the only flag a driver may set inside an indirect table.
                if ((ReadFlags(table, i) & ~PackedRing.DescFlagWrite) != 0)
                {
                    throw new InvalidOperationException($"Driver bug: indirect descriptor {i} has flags 0x{ReadFlags(table, i):x4}.");
                }

                buffers.Add(ReadBuffer(table, i, ref seenWritable));
            }

            id = SharedMemory.ReadUInt16(head + PackedRing.DescriptorIdOffset);
            descriptors = 1;
            Advance(ref _availSlot, ref _availWrap, 1);
        }
        else
        {
            descriptors = 0;
            while (true)
            {
                if (descriptors >= _size)
                {
                    throw new InvalidOperationException("Driver bug: a descriptor list longer than the ring.");
                }

                ushort flags = ReadFlags(_ring, _availSlot);
                if (!PackedRing.IsAvailable(flags, _availWrap))
                {
                    throw new InvalidOperationException(
                        $"Driver bug: descriptor {descriptors} of a list, at slot {_availSlot}, has flags 0x{flags:x4}, not available for wrap {_availWrap}.");
                }

                if ((flags & PackedRing.DescFlagIndirect) != 0)
                {
                    throw new InvalidOperationException("Driver bug: VIRTQ_DESC_F_INDIRECT inside a list linked by VIRTQ_DESC_F_NEXT.");
                }

                buffers.Add(ReadBuffer(_ring, _availSlot, ref seenWritable));

                // §2.8.6: the Buffer ID is in the last descriptor of the list.
                id = SharedMemory.ReadUInt16(Descriptor(_ring, _availSlot) + PackedRing.DescriptorIdOffset);
                descriptors++;
                Advance(ref _availSlot, ref _availWrap, 1);
                if ((flags & PackedRing.DescFlagNext) == 0)
                {
                    break;
                }
            }
        }

        if (id >= _size)
        {
            throw new InvalidOperationException($"Driver bug: Buffer ID {id} in a ring of {_size}.");
        }

        if (_descriptorsOf[id] != 0)
        {
            throw new InvalidOperationException($"Driver bug: Buffer ID {id} made available again while the device still holds it.");
        }

        _descriptorsOf[id] = descriptors;
        Popped++;
        if (_eventIdx && PublishAvailEventOnPop)
        {
            DeviceEventOffWrap = PackedRing.EventOffWrap(_availSlot, _availWrap);
            DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        }

        chain = new DeviceChain(_memory, id, indirect, buffers);
        return true;
    }

    /// <summary>Pops every available chain.</summary>
    public List<DeviceChain> PopAll()
    {
        var chains = new List<DeviceChain>();
        while (TryPop(out DeviceChain? chain))
        {
            chains.Add(chain);
        }

        return chains;
    }

    /// <summary>
    /// Returns <paramref name="chain"/> with <paramref name="length"/> bytes written: a used descriptor at the used slot,
    /// VIRTQ_DESC_F_WRITE set when the chain has writable elements (as QEMU does), then a skip by the chain's length.
    /// </summary>
    public void Complete(DeviceChain chain, uint length)
    {
        ArgumentNullException.ThrowIfNull(chain);
        int descriptors = _descriptorsOf[chain.Head];
        if (descriptors == 0)
        {
            throw new InvalidOperationException($"Test bug: the device does not hold Buffer ID {chain.Head}.");
        }

        _descriptorsOf[chain.Head] = 0;
        bool written = chain.WritableCapacity > 0 || length > 0;
        PushUsed(chain.Head, length, descriptors, written);
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

        WriteUsed(_usedSlot, id, length, flags);
        Advance(ref _usedSlot, ref _usedWrap, skip);
        _usedSinceSignal += skip;
    }

    /// <summary>
    /// Returns <paramref name="chains"/>, popped in this order, as one VIRTIO_F_IN_ORDER batch: a single used descriptor
    /// at the used slot (the first chain's), naming the Buffer ID of the last with <paramref name="lastLength"/>, then a
    /// skip over every descriptor of the batch (§2.8.9). The others count as used completely.
    /// </summary>
    public void CompleteInOrderBatch(IReadOnlyList<DeviceChain> chains, uint lastLength)
    {
        ArgumentNullException.ThrowIfNull(chains);
        if (chains.Count == 0)
        {
            throw new ArgumentException("Test bug: an empty batch.", nameof(chains));
        }

        int skip = 0;
        bool written = false;
        foreach (DeviceChain chain in chains)
        {
            int descriptors = _descriptorsOf[chain.Head];
            if (descriptors == 0)
            {
                throw new InvalidOperationException($"Test bug: the device does not hold Buffer ID {chain.Head}.");
            }

            _descriptorsOf[chain.Head] = 0;
            skip += descriptors;
            written |= chain.WritableCapacity > 0;
        }

        PushUsed(chains[^1].Head, lastLength, skip, written || lastLength > 0);
    }

    /// <summary>Writes a descriptor with any id, length and flags at the used slot without moving on: the way to lie about flag bits.</summary>
    public void PushRawUsed(ushort id, uint length, ushort flags) => WriteUsed(_usedSlot, id, length, flags);

    /// <summary>
    /// Pops every available chain, copies its readable bytes into its writable buffers (as much as fits) and returns it
    /// with the number of bytes written. Returns the number of chains served.
    /// </summary>
    public int Loopback()
    {
        int served = 0;
        while (TryPop(out DeviceChain? chain))
        {
            int written = chain.WriteWritable(chain.ReadReadable());
            Complete(chain, (uint)written);
            served++;
        }

        return served;
    }

    /// <summary>
    /// Whether the device would send a used-buffer notification for the descriptors marked used since the last call,
    /// per the Driver Event Suppression structure: DISABLE never, DESC (with EVENT_IDX) when the named slot was
    /// passed, otherwise always. Ref: virtio v1.2 §2.8.10.
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

        if (flags == PackedRing.RingEventFlagsDesc && _eventIdx)
        {
            // More than a lap since the last decision passes every slot.
            return count >= _size || PackedRing.NeedEvent(DriverEventOffWrap, _usedSlot, _usedWrap, count, _size);
        }

        return true;
    }

    /// <summary>Overwrites every field of the ring descriptor at <paramref name="slot"/> with junk, as a hostile device may.</summary>
    public void ScribbleOverDescriptor(int slot)
    {
        nint descriptor = Descriptor(_ring, slot);
        SharedMemory.WriteUInt64(descriptor + PackedRing.DescriptorAddrOffset, 0xDEAD_BEEF_DEAD_BEEF);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, uint.MaxValue);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, ushort.MaxValue);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorFlagsOffset, ushort.MaxValue);
    }

    private void WriteUsed(int slot, ushort id, uint length, ushort flags)
    {
        nint descriptor = Descriptor(_ring, slot);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, id);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, length);

        // id and len before the flags that hand the descriptor back.
        SharedMemory.FullBarrier();
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorFlagsOffset, flags);
    }

    private void Advance(ref int slot, ref bool wrap, int count)
    {
        slot += count;
        while (slot >= _size)
        {
            slot -= _size;
            wrap = !wrap;
        }
    }

    private DeviceBuffer ReadBuffer(nint table, int index, ref bool seenWritable)
    {
        nint descriptor = Descriptor(table, index);
        ulong address = SharedMemory.ReadUInt64(descriptor + PackedRing.DescriptorAddrOffset);
        uint length = SharedMemory.ReadUInt32(descriptor + PackedRing.DescriptorLenOffset);
        bool writable = (SharedMemory.ReadUInt16(descriptor + PackedRing.DescriptorFlagsOffset) & PackedRing.DescFlagWrite) != 0;
        if (!writable && seenWritable)
        {
            throw new InvalidOperationException("Driver bug: a device-readable descriptor after a device-writable one.");
        }

        seenWritable |= writable;

        // Throws when the driver handed out an address that is not DMA memory (a CPU pointer, say).
        _memory.Translate(address, length);
        return new DeviceBuffer(address, length, writable);
    }

    private static nint Descriptor(nint table, int index) => table + (index * PackedRing.DescriptorSize);

    private static ushort ReadFlags(nint table, int index)
        => SharedMemory.ReadUInt16(Descriptor(table, index) + PackedRing.DescriptorFlagsOffset);
}
