using System.Diagnostics.CodeAnalysis;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// Plays the device side of a packed virtqueue, in software, over the library's <see cref="DevicePackedRing"/>: reaches
/// the driver's ring through the device addresses the queue reports (translated by the <see cref="HeapDmaAllocator"/>,
/// as an IOMMU would), pops chains, writes payload, and returns them with one used descriptor each. A driver bug makes
/// the ring throw <see cref="Core.VirtioException"/>. It can also be told to lie (any id, length, flags or skip) so
/// tests can see the driver survive a hostile device. Ref: virtio v1.2 §2.8.
/// </summary>
/// <remarks>
/// The <see cref="DeviceChain.Head"/> of a chain this device pops is its Buffer ID, the value that goes into the used
/// descriptor.
/// </remarks>
public sealed class SoftwarePackedDevice
{
    private readonly HeapDmaAllocator _memory;
    private readonly DevicePackedRing _ring;

    // CPU address of the Descriptor Ring, for the scribbling a hostile device does.
    private readonly nint _descriptors;

    // Room for the longest chain the driver may make: a queue's worth of descriptors.
    private readonly DeviceBuffer[] _buffers;

    /// <summary>Attaches to the ring of <paramref name="queue"/>.</summary>
    public SoftwarePackedDevice(HeapDmaAllocator memory, IVirtqueue queue, bool eventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(queue);
        _memory = memory;
        _ring = new DevicePackedRing(memory, queue.Size, queue.DescriptorArea, queue.DriverArea, queue.DeviceArea, eventIdx);
        _descriptors = memory.Translate(queue.DescriptorArea, PackedRing.DescriptorSize * (long)queue.Size);
        _buffers = new DeviceBuffer[queue.Size];
    }

    /// <summary>With EVENT_IDX, name the next slot to poll in the device event structure after each pop. Default true.</summary>
    public bool PublishAvailEventOnPop
    {
        get => _ring.PublishAvailEventOnPop;
        set => _ring.PublishAvailEventOnPop = value;
    }

    /// <summary>Chains popped so far.</summary>
    public int Popped { get; private set; }

    /// <summary>The next slot the device polls for an available descriptor.</summary>
    public int AvailSlot => _ring.AvailSlot;

    /// <summary>The wrap counter the device expects at <see cref="AvailSlot"/>.</summary>
    public bool AvailWrap => _ring.AvailWrap;

    /// <summary>The slot the next used descriptor goes to.</summary>
    public int UsedSlot => _ring.UsedSlot;

    /// <summary>The Device Ring Wrap Counter.</summary>
    public bool UsedWrap => _ring.UsedWrap;

    /// <summary>True when the descriptor at <see cref="AvailSlot"/> is available.</summary>
    public bool HasAvailable => _ring.HasAvailable;

    /// <summary>desc_event_flags of the Device Event Suppression structure, which the device writes.</summary>
    public ushort DeviceEventFlags
    {
        get => _ring.DeviceEventFlags;
        set => _ring.DeviceEventFlags = value;
    }

    /// <summary>desc_event_off/wrap of the Device Event Suppression structure, which the device writes.</summary>
    public ushort DeviceEventOffWrap
    {
        get => _ring.DeviceEventOffWrap;
        set => _ring.DeviceEventOffWrap = value;
    }

    /// <summary>desc_event_flags of the Driver Event Suppression structure, as the driver wrote it.</summary>
    public ushort DriverEventFlags => _ring.DriverEventFlags;

    /// <summary>desc_event_off/wrap of the Driver Event Suppression structure, as the driver wrote it.</summary>
    public ushort DriverEventOffWrap => _ring.DriverEventOffWrap;

    /// <summary>The flags of the ring descriptor at <paramref name="slot"/> as they are in memory now.</summary>
    public ushort RawFlags(int slot) => _ring.RawFlags(slot);

    /// <summary>The id of the ring descriptor at <paramref name="slot"/> as it is in memory now.</summary>
    public ushort RawId(int slot) => _ring.RawId(slot);

    /// <summary>Pops the next available chain, or returns false when the descriptor at the poll slot is not available.</summary>
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

    /// <summary>
    /// Returns <paramref name="chain"/> with <paramref name="length"/> bytes written: a used descriptor at the used slot,
    /// VIRTQ_DESC_F_WRITE set when the chain has writable elements (as QEMU does), then a skip by the chain's length.
    /// </summary>
    public void Complete(DeviceChain chain, uint length)
    {
        ArgumentNullException.ThrowIfNull(chain);
        _ring.Complete(chain.Head, length, written: chain.WritableCapacity > 0 || length > 0);
    }

    /// <summary>
    /// Writes a used descriptor with any id and length at the used slot, marked used under the device's wrap counter,
    /// and skips <paramref name="skip"/> slots: the raw operation behind <see cref="Complete"/>, and a way to lie.
    /// </summary>
    public void PushUsed(ushort id, uint length, int skip = 1, bool written = true) => _ring.PushUsed(id, length, skip, written);

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

        ushort[] ids = [.. chains.Select(chain => chain.Head)];
        bool written = chains.Any(chain => chain.WritableCapacity > 0);
        _ring.CompleteInOrderBatch(ids, lastLength, written || lastLength > 0);
    }

    /// <summary>Writes a descriptor with any id, length and flags at the used slot without moving on: the way to lie about flag bits.</summary>
    public void PushRawUsed(ushort id, uint length, ushort flags) => _ring.PushRawUsed(id, length, flags);

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
    /// per the Driver Event Suppression structure. Ref: virtio v1.2 §2.8.10.
    /// </summary>
    public bool TakeInterruptDecision() => _ring.TakeInterruptDecision();

    /// <summary>Overwrites every field of the ring descriptor at <paramref name="slot"/> with junk, as a hostile device may.</summary>
    public void ScribbleOverDescriptor(int slot)
    {
        nint descriptor = _descriptors + (slot * PackedRing.DescriptorSize);
        SharedMemory.WriteUInt64(descriptor + PackedRing.DescriptorAddrOffset, 0xDEAD_BEEF_DEAD_BEEF);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, uint.MaxValue);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, ushort.MaxValue);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorFlagsOffset, ushort.MaxValue);
    }
}
