using VirtioNet.Core;

namespace VirtioNet.Virtqueues;

/// <summary>
/// Where the Descriptor Ring, the Driver Event Suppression structure and the Device Event Suppression structure of a
/// packed virtqueue of a given size lie inside one contiguous block. Ref: virtio v1.2 §2.8.10.1.
/// </summary>
/// <remarks>
/// The transport takes the three addresses separately; one block with the ring first (16-aligned, 16 × size bytes)
/// and the two 4-byte structures after it keeps every part at its alignment, since 16 × size is a multiple of 16.
/// </remarks>
public readonly record struct PackedQueueLayout
{
    /// <summary>Computes the layout of a queue of <paramref name="size"/> descriptors.</summary>
    /// <param name="size">Queue size: from 1 to 32768, not necessarily a power of two (§2.8.10.1).</param>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.QueueUnavailable"/> for size 0 (the queue does not exist);
    /// <see cref="VirtioErrorReason.InvalidConfiguration"/> for a negative size or one above 32768.
    /// </exception>
    public PackedQueueLayout(int size)
    {
        if (size == 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, "A queue size of 0 means the queue does not exist.");
        }

        if (size < 0 || size > PackedRing.MaxSize)
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"A packed virtqueue size must be from 1 to {PackedRing.MaxSize}; got {size}.");
        }

        Size = size;
        Alignment = PackedRing.DescriptorRingAlignment;
        DescriptorRingOffset = 0;
        DescriptorRingLength = PackedRing.DescriptorSize * size;
        DriverEventSuppressionOffset = DescriptorRingOffset + DescriptorRingLength;
        DeviceEventSuppressionOffset = DriverEventSuppressionOffset + PackedRing.EventSuppressionSize;
        TotalLength = DeviceEventSuppressionOffset + PackedRing.EventSuppressionSize;
    }

    /// <summary>Number of descriptors in the ring.</summary>
    public int Size { get; }

    /// <summary>The alignment the block's device address must have: that of the Descriptor Ring, 16.</summary>
    public int Alignment { get; }

    /// <summary>Bytes the whole block occupies.</summary>
    public int TotalLength { get; }

    /// <summary>Offset of the Descriptor Ring (the Descriptor Area): always 0, the start of the block.</summary>
    public int DescriptorRingOffset { get; }

    /// <summary>Length of the Descriptor Ring: 16 × size.</summary>
    public int DescriptorRingLength { get; }

    /// <summary>Offset of the Driver Event Suppression structure (the Driver Area), 4-aligned.</summary>
    public int DriverEventSuppressionOffset { get; }

    /// <summary>Offset of the Device Event Suppression structure (the Device Area), 4-aligned.</summary>
    public int DeviceEventSuppressionOffset { get; }

    /// <summary>Offset of descriptor <paramref name="slot"/> (0 ≤ slot &lt; size).</summary>
    public int DescriptorOffset(int slot) => DescriptorRingOffset + (PackedRing.DescriptorSize * slot);
}
