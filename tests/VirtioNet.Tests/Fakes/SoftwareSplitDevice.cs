using System.Diagnostics.CodeAnalysis;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// Plays the device side of a split virtqueue, in software: reads the driver's rings through the device addresses the
/// queue reports (translated by the <see cref="HeapDmaAllocator"/>, as an IOMMU would), pops available chains following
/// next and indirect links, writes payload, publishes used entries, and writes avail_event and used.flags. It checks
/// what the driver wrote and throws <see cref="InvalidOperationException"/> on a driver bug. It can also be told to lie
/// (any id, any length, any used.idx) so tests can see the driver survive a hostile device. Ref: virtio v1.2 §2.7.
/// </summary>
public sealed class SoftwareSplitDevice
{
    private readonly HeapDmaAllocator _memory;
    private readonly int _size;
    private readonly bool _eventIdx;
    private readonly SplitQueueLayout _offsets;

    // CPU addresses of the three areas (each translated separately, as a modern device would).
    private readonly nint _descriptors;
    private readonly nint _available;
    private readonly nint _used;

    // The next available entry the device will read (last_avail_idx in QEMU).
    private ushort _lastAvail;

    // The device's used.idx.
    private ushort _usedIdx;

    // used.idx when the device last decided whether to interrupt.
    private ushort _signalledUsed;

    /// <summary>Attaches to the rings of <paramref name="queue"/>.</summary>
    public SoftwareSplitDevice(HeapDmaAllocator memory, IVirtqueue queue, bool eventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(queue);
        _memory = memory;
        _size = queue.Size;
        _eventIdx = eventIdx;

        // Only the field offsets inside each area are used; the areas themselves come from the queue's addresses.
        _offsets = new SplitQueueLayout(_size);
        _descriptors = memory.Translate(queue.DescriptorArea, _offsets.DescriptorTableLength);
        _available = memory.Translate(queue.DriverArea, _offsets.AvailableRingLength);
        _used = memory.Translate(queue.DeviceArea, _offsets.UsedRingLength);
    }

    /// <summary>With EVENT_IDX, write avail_event = the next entry after each pop, as QEMU does. Default true.</summary>
    public bool PublishAvailEventOnPop { get; set; } = true;

    /// <summary>Chains popped so far.</summary>
    public int Popped { get; private set; }

    /// <summary>avail.idx as the driver last published it.</summary>
    public ushort AvailIdx => SharedMemory.ReadUInt16(_available + SplitRing.AvailIdxOffset);

    /// <summary>avail.flags as the driver wrote it.</summary>
    public ushort AvailFlags => SharedMemory.ReadUInt16(_available + SplitRing.AvailFlagsOffset);

    /// <summary>used_event as the driver wrote it.</summary>
    public ushort UsedEvent => SharedMemory.ReadUInt16(_available + AvailableRelative(_offsets.UsedEventOffset));

    /// <summary>The device's used.idx.</summary>
    public ushort UsedIdx => _usedIdx;

    /// <summary>Entries published by the driver and not popped yet.</summary>
    public int PendingAvailable => (ushort)(AvailIdx - _lastAvail);

    /// <summary>avail_event, which the device writes to say after which entry it wants a notification.</summary>
    public ushort AvailEvent
    {
        get => SharedMemory.ReadUInt16(_used + UsedRelative(_offsets.AvailEventOffset));
        set => SharedMemory.WriteUInt16(_used + UsedRelative(_offsets.AvailEventOffset), value);
    }

    /// <summary>VIRTQ_USED_F_NO_NOTIFY in used.flags.</summary>
    public bool NoNotify
    {
        get => (SharedMemory.ReadUInt16(_used + SplitRing.UsedFlagsOffset) & SplitRing.UsedFlagNoNotify) != 0;
        set => SharedMemory.WriteUInt16(_used + SplitRing.UsedFlagsOffset, value ? SplitRing.UsedFlagNoNotify : (ushort)0);
    }

    /// <summary>Pops the next available chain, or returns false when the driver has published none.</summary>
    public bool TryPop([NotNullWhen(true)] out DeviceChain? chain)
    {
        if (_lastAvail == AvailIdx)
        {
            chain = null;
            return false;
        }

        // avail.idx before the entries it covers.
        SharedMemory.FullBarrier();
        ushort head = SharedMemory.ReadUInt16(_available + AvailableRelative(_offsets.AvailEntryOffset(_lastAvail % _size)));
        _lastAvail++;
        chain = Walk(head);
        Popped++;
        if (_eventIdx && PublishAvailEventOnPop)
        {
            AvailEvent = _lastAvail;
        }

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

    /// <summary>Returns <paramref name="chain"/> with <paramref name="length"/> bytes written.</summary>
    public void Complete(DeviceChain chain, uint length)
    {
        ArgumentNullException.ThrowIfNull(chain);
        PushUsed(chain.Head, length);
    }

    /// <summary>
    /// Writes a used entry with any id and length, then publishes it: the raw operation behind <see cref="Complete"/>,
    /// and the way to lie.
    /// </summary>
    public void PushUsed(uint id, uint length)
    {
        nint element = _used + UsedRelative(_offsets.UsedElemOffset(_usedIdx % _size));
        SharedMemory.WriteUInt32(element + SplitRing.UsedElemIdOffset, id);
        SharedMemory.WriteUInt32(element + SplitRing.UsedElemLenOffset, length);

        // The entry before the used.idx that exposes it.
        SharedMemory.FullBarrier();
        _usedIdx++;
        SharedMemory.WriteUInt16(_used + SplitRing.UsedIdxOffset, _usedIdx);
    }

    /// <summary>
    /// Returns <paramref name="chains"/>, popped in this order, as one VIRTIO_F_IN_ORDER batch: a single used entry at the
    /// slot of the first, naming the head of the last with <paramref name="lastLength"/>, and used.idx moved by the
    /// batch size (§2.7.9). The others count as used completely.
    /// </summary>
    public void CompleteInOrderBatch(IReadOnlyList<DeviceChain> chains, uint lastLength)
    {
        ArgumentNullException.ThrowIfNull(chains);
        if (chains.Count == 0)
        {
            throw new ArgumentException("Test bug: an empty batch.", nameof(chains));
        }

        PushUsedBatch(chains[^1].Head, lastLength, chains.Count);
    }

    /// <summary>
    /// Writes one used entry with any id and length at the next used slot and moves used.idx by <paramref name="batchSize"/>:
    /// the raw operation behind <see cref="CompleteInOrderBatch"/>, and the way to lie about a batch.
    /// </summary>
    public void PushUsedBatch(uint id, uint length, int batchSize)
    {
        nint element = _used + UsedRelative(_offsets.UsedElemOffset(_usedIdx % _size));
        SharedMemory.WriteUInt32(element + SplitRing.UsedElemIdOffset, id);
        SharedMemory.WriteUInt32(element + SplitRing.UsedElemLenOffset, length);
        SharedMemory.FullBarrier();
        _usedIdx += (ushort)batchSize;
        SharedMemory.WriteUInt16(_used + SplitRing.UsedIdxOffset, _usedIdx);
    }

    /// <summary>Publishes an arbitrary used.idx (a lie when it covers entries never written).</summary>
    public void SetUsedIdx(ushort value)
    {
        _usedIdx = value;
        SharedMemory.WriteUInt16(_used + SplitRing.UsedIdxOffset, value);
    }

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
    /// Whether the device would send a used-buffer notification for the entries published since the last call:
    /// used_event with EVENT_IDX, else VIRTQ_AVAIL_F_NO_INTERRUPT. Ref: virtio v1.2 §2.7.7.
    /// </summary>
    public bool TakeInterruptDecision()
    {
        bool need = _eventIdx
            ? VirtqueueNotification.NeedEvent(UsedEvent, _usedIdx, _signalledUsed)
            : _usedIdx != _signalledUsed && (AvailFlags & SplitRing.AvailFlagNoInterrupt) == 0;
        _signalledUsed = _usedIdx;
        return need;
    }

    /// <summary>Overwrites every field of ring descriptor <paramref name="index"/> with junk, as a hostile device may.</summary>
    public void ScribbleOverDescriptor(int index)
    {
        nint descriptor = _descriptors + (index * SplitRing.DescriptorSize);
        SharedMemory.WriteUInt64(descriptor + SplitRing.DescriptorAddrOffset, 0xDEAD_BEEF_DEAD_BEEF);
        SharedMemory.WriteUInt32(descriptor + SplitRing.DescriptorLenOffset, uint.MaxValue);
        SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorFlagsOffset, ushort.MaxValue);
        SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorNextOffset, ushort.MaxValue);
    }

    /// <summary>Overwrites avail.idx, which only the driver may write.</summary>
    public void ScribbleOverAvailIdx(ushort value) => SharedMemory.WriteUInt16(_available + SplitRing.AvailIdxOffset, value);

    private DeviceChain Walk(ushort head)
    {
        if (head >= _size)
        {
            throw new InvalidOperationException($"Driver bug: available entry names descriptor {head} in a ring of {_size}.");
        }

        var buffers = new List<DeviceBuffer>();
        bool seenWritable = false;
        ushort flags = ReadFlags(_descriptors, head);
        if ((flags & SplitRing.DescFlagIndirect) != 0)
        {
            // §2.7.5.3.1: never INDIRECT with NEXT; the table length is a whole number of descriptors.
            if ((flags & SplitRing.DescFlagNext) != 0)
            {
                throw new InvalidOperationException("Driver bug: VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT.");
            }

            ulong tableAddress = SharedMemory.ReadUInt64(Descriptor(_descriptors, head) + SplitRing.DescriptorAddrOffset);
            uint tableLength = SharedMemory.ReadUInt32(Descriptor(_descriptors, head) + SplitRing.DescriptorLenOffset);
            if (tableLength == 0 || tableLength % SplitRing.DescriptorSize != 0 || tableLength / SplitRing.DescriptorSize > _size)
            {
                throw new InvalidOperationException($"Driver bug: indirect table of {tableLength} bytes.");
            }

            int entries = (int)(tableLength / SplitRing.DescriptorSize);
            nint table = _memory.Translate(tableAddress, tableLength);
            int index = 0;
            for (int count = 0; ; count++)
            {
                if (count >= entries)
                {
                    throw new InvalidOperationException("Driver bug: the indirect chain loops or runs past its table.");
                }

                ushort entryFlags = ReadFlags(table, index);
                if ((entryFlags & SplitRing.DescFlagIndirect) != 0)
                {
                    throw new InvalidOperationException("Driver bug: VIRTQ_DESC_F_INDIRECT inside an indirect table.");
                }

                buffers.Add(ReadBuffer(table, index, ref seenWritable));
                if ((entryFlags & SplitRing.DescFlagNext) == 0)
                {
                    break;
                }

                index = SharedMemory.ReadUInt16(Descriptor(table, index) + SplitRing.DescriptorNextOffset);
                if (index >= entries)
                {
                    throw new InvalidOperationException($"Driver bug: indirect next {index} outside a table of {entries}.");
                }
            }

            return new DeviceChain(_memory, head, indirect: true, buffers);
        }

        int current = head;
        for (int count = 0; ; count++)
        {
            if (count >= _size)
            {
                throw new InvalidOperationException("Driver bug: the descriptor chain loops.");
            }

            ushort currentFlags = ReadFlags(_descriptors, current);
            if ((currentFlags & SplitRing.DescFlagIndirect) != 0)
            {
                throw new InvalidOperationException("Driver bug: VIRTQ_DESC_F_INDIRECT in the middle of a chain.");
            }

            buffers.Add(ReadBuffer(_descriptors, current, ref seenWritable));
            if ((currentFlags & SplitRing.DescFlagNext) == 0)
            {
                break;
            }

            current = SharedMemory.ReadUInt16(Descriptor(_descriptors, current) + SplitRing.DescriptorNextOffset);
            if (current >= _size)
            {
                throw new InvalidOperationException($"Driver bug: next {current} outside a ring of {_size}.");
            }
        }

        return new DeviceChain(_memory, head, indirect: false, buffers);
    }

    private DeviceBuffer ReadBuffer(nint table, int index, ref bool seenWritable)
    {
        nint descriptor = Descriptor(table, index);
        ulong address = SharedMemory.ReadUInt64(descriptor + SplitRing.DescriptorAddrOffset);
        uint length = SharedMemory.ReadUInt32(descriptor + SplitRing.DescriptorLenOffset);
        bool writable = (SharedMemory.ReadUInt16(descriptor + SplitRing.DescriptorFlagsOffset) & SplitRing.DescFlagWrite) != 0;
        if (!writable && seenWritable)
        {
            throw new InvalidOperationException("Driver bug: a device-readable descriptor after a device-writable one.");
        }

        seenWritable |= writable;

        // Throws when the driver handed out an address that is not DMA memory (a CPU pointer, say).
        _memory.Translate(address, length);
        return new DeviceBuffer(address, length, writable);
    }

    private static nint Descriptor(nint table, int index) => table + (index * SplitRing.DescriptorSize);

    private static ushort ReadFlags(nint table, int index)
        => SharedMemory.ReadUInt16(Descriptor(table, index) + SplitRing.DescriptorFlagsOffset);

    // The layout's offsets are from the start of a block; the device reaches each area by its own address.
    private int AvailableRelative(int blockOffset) => blockOffset - _offsets.AvailableRingOffset;

    private int UsedRelative(int blockOffset) => blockOffset - _offsets.UsedRingOffset;
}
