using System.Diagnostics.CodeAnalysis;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// Plays the device side of a split virtqueue, in software, over the library's <see cref="DeviceSplitRing"/>: reaches
/// the driver's rings through the device addresses the queue reports (translated by the <see cref="HeapDmaAllocator"/>,
/// as an IOMMU would), pops available chains, writes payload and publishes used entries. A driver bug makes the ring
/// throw <see cref="Core.VirtioException"/>. It can also be told to lie (any id, any length, any used.idx) so tests can
/// see the driver survive a hostile device. Ref: virtio v1.2 §2.7.
/// </summary>
public sealed class SoftwareSplitDevice
{
    private readonly HeapDmaAllocator _memory;
    private readonly DeviceSplitRing _ring;

    // CPU address of the descriptor table and the available ring, for the scribbling a hostile device does.
    private readonly nint _descriptors;
    private readonly nint _available;

    // Room for the longest chain the driver may make: a queue's worth of descriptors.
    private readonly DeviceBuffer[] _buffers;

    /// <summary>Attaches to the rings of <paramref name="queue"/>.</summary>
    public SoftwareSplitDevice(HeapDmaAllocator memory, IVirtqueue queue, bool eventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(queue);
        _memory = memory;
        _ring = new DeviceSplitRing(memory, queue.Size, queue.DescriptorArea, queue.DriverArea, queue.DeviceArea, eventIdx);
        var layout = new SplitQueueLayout(queue.Size);
        _descriptors = memory.Translate(queue.DescriptorArea, layout.DescriptorTableLength);
        _available = memory.Translate(queue.DriverArea, layout.AvailableRingLength);
        _buffers = new DeviceBuffer[queue.Size];
    }

    /// <summary>With EVENT_IDX, write avail_event = the next entry after each pop, as QEMU does. Default true.</summary>
    public bool PublishAvailEventOnPop
    {
        get => _ring.PublishAvailEventOnPop;
        set => _ring.PublishAvailEventOnPop = value;
    }

    /// <summary>Chains popped so far.</summary>
    public int Popped { get; private set; }

    /// <summary>avail.idx as the driver last published it.</summary>
    public ushort AvailIdx => _ring.AvailIdx;

    /// <summary>avail.flags as the driver wrote it.</summary>
    public ushort AvailFlags => _ring.AvailFlags;

    /// <summary>used_event as the driver wrote it.</summary>
    public ushort UsedEvent => _ring.UsedEvent;

    /// <summary>The device's used.idx.</summary>
    public ushort UsedIdx => _ring.UsedIdx;

    /// <summary>Entries published by the driver and not popped yet.</summary>
    public int PendingAvailable => (ushort)(AvailIdx - _ring.LastAvailIdx);

    /// <summary>avail_event, which the device writes to say after which entry it wants a notification.</summary>
    public ushort AvailEvent
    {
        get => _ring.AvailEvent;
        set => _ring.AvailEvent = value;
    }

    /// <summary>VIRTQ_USED_F_NO_NOTIFY in used.flags.</summary>
    public bool NoNotify
    {
        get => _ring.NoNotify;
        set => _ring.NoNotify = value;
    }

    /// <summary>Pops the next available chain, or returns false when the driver has published none.</summary>
    public bool TryPop([NotNullWhen(true)] out DeviceChain? chain)
    {
        if (!_ring.TryPop(_buffers, out DeviceRingChain taken))
        {
            chain = null;
            return false;
        }

        Popped++;
        chain = new DeviceChain(_memory, taken.Id, taken.Indirect, [.. _buffers.AsSpan(0, taken.BufferCount)]);
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
    public void PushUsed(uint id, uint length) => _ring.PushUsed(id, length);

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
    public void PushUsedBatch(uint id, uint length, int batchSize) => _ring.PushUsed(id, length, batchSize);

    /// <summary>Publishes an arbitrary used.idx (a lie when it covers entries never written).</summary>
    public void SetUsedIdx(ushort value) => _ring.SetUsedIdx(value);

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
    public bool TakeInterruptDecision() => _ring.TakeInterruptDecision();

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
}
