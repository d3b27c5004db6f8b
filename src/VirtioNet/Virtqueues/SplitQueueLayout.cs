using VirtioNet.Core;

namespace VirtioNet.Virtqueues;

/// <summary>
/// Where the descriptor table, available ring and used ring of a split virtqueue of a given size lie inside one
/// contiguous block, and how large the block is. Ref: virtio v1.2 §2.7 (alignment table) and §2.7.2 (legacy layout).
/// </summary>
/// <remarks>
/// Modern interfaces take the three addresses separately; one block with each area at its own alignment
/// (descriptor table 16, available ring 2, used ring 4) satisfies them. Legacy interfaces take one address and
/// compute the others: the descriptor table, then the available ring including used_event, then padding to
/// the queue alignment (4096 on legacy PCI), then the used ring including avail_event.
/// </remarks>
public readonly record struct SplitQueueLayout
{
    /// <summary>Computes the layout of a queue of <paramref name="size"/> entries.</summary>
    /// <param name="size">Queue size: a power of two from 1 to 32768.</param>
    /// <param name="legacyQueueAlign">The legacy queue alignment (a power of two, at least 16), or 0 for the modern layout.</param>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.QueueUnavailable"/> for size 0 (the queue does not exist);
    /// <see cref="VirtioErrorReason.InvalidConfiguration"/> for any other size or alignment the spec does not allow.
    /// </exception>
    public SplitQueueLayout(int size, int legacyQueueAlign = 0)
    {
        if (size == 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, "A queue size of 0 means the queue does not exist.");
        }

        // §2.7: "Queue Size ... is always a power of 2" for split queues; the maximum is 32768.
        if (size < 0 || size > SplitRing.MaxSize || (size & (size - 1)) != 0)
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"A split virtqueue size must be a power of two from 1 to {SplitRing.MaxSize}; got {size}.");
        }

        if (legacyQueueAlign != 0 && (legacyQueueAlign < SplitRing.DescriptorTableAlignment || (legacyQueueAlign & (legacyQueueAlign - 1)) != 0))
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"A legacy queue alignment must be a power of two of at least {SplitRing.DescriptorTableAlignment}, or 0 for the modern layout; got {legacyQueueAlign}.");
        }

        Size = size;
        DescriptorTableOffset = 0;
        LegacyQueueAlign = legacyQueueAlign;
        DescriptorTableLength = SplitRing.DescriptorSize * size;
        AvailableRingOffset = AlignUp(DescriptorTableLength, SplitRing.AvailableRingAlignment);

        // flags, idx, ring[N], used_event.
        AvailableRingLength = SplitRing.AvailRingOffset + (SplitRing.AvailEntrySize * size) + sizeof(ushort);

        // flags, idx, ring[N], avail_event.
        UsedRingLength = SplitRing.UsedRingOffset + (SplitRing.UsedElemSize * size) + sizeof(ushort);
        if (legacyQueueAlign == 0)
        {
            UsedRingOffset = AlignUp(AvailableRingOffset + AvailableRingLength, SplitRing.UsedRingAlignment);
            TotalLength = UsedRingOffset + UsedRingLength;
            Alignment = SplitRing.DescriptorTableAlignment;
        }
        else
        {
            // §2.7.2: virtq_size() = ALIGN(desc + avail, align) + ALIGN(used, align).
            UsedRingOffset = AlignUp(AvailableRingOffset + AvailableRingLength, legacyQueueAlign);
            TotalLength = UsedRingOffset + AlignUp(UsedRingLength, legacyQueueAlign);
            Alignment = legacyQueueAlign;
        }
    }

    /// <summary>Number of descriptors (and of entries in each ring).</summary>
    public int Size { get; }

    /// <summary>The legacy queue alignment, or 0 for the modern layout.</summary>
    public int LegacyQueueAlign { get; }

    /// <summary>True for the legacy single-block layout.</summary>
    public bool IsLegacy => LegacyQueueAlign != 0;

    /// <summary>The alignment the block's device address must have: 16 (modern) or the legacy queue alignment.</summary>
    public int Alignment { get; }

    /// <summary>Bytes the whole block occupies (for legacy, including the padding after the used ring).</summary>
    public int TotalLength { get; }

    /// <summary>Offset of the descriptor table: always 0, the start of the block.</summary>
    public int DescriptorTableOffset { get; }

    /// <summary>Length of the descriptor table: 16 × size.</summary>
    public int DescriptorTableLength { get; }

    /// <summary>Offset of the available ring (the driver area).</summary>
    public int AvailableRingOffset { get; }

    /// <summary>Length of the available ring: 6 + 2 × size (flags, idx, ring, used_event).</summary>
    public int AvailableRingLength { get; }

    /// <summary>Offset of the used ring (the device area).</summary>
    public int UsedRingOffset { get; }

    /// <summary>Length of the used ring: 6 + 8 × size (flags, idx, ring, avail_event).</summary>
    public int UsedRingLength { get; }

    /// <summary>Offset of virtq_avail.flags.</summary>
    public int AvailFlagsOffset => AvailableRingOffset + SplitRing.AvailFlagsOffset;

    /// <summary>Offset of virtq_avail.idx.</summary>
    public int AvailIdxOffset => AvailableRingOffset + SplitRing.AvailIdxOffset;

    /// <summary>Offset of used_event (virtq_avail.ring[size]), meaningful with VIRTIO_F_EVENT_IDX. Ref: virtio v1.2 §2.7.7.</summary>
    public int UsedEventOffset => AvailableRingOffset + SplitRing.AvailRingOffset + (SplitRing.AvailEntrySize * Size);

    /// <summary>Offset of virtq_used.flags.</summary>
    public int UsedFlagsOffset => UsedRingOffset + SplitRing.UsedFlagsOffset;

    /// <summary>Offset of virtq_used.idx.</summary>
    public int UsedIdxOffset => UsedRingOffset + SplitRing.UsedIdxOffset;

    /// <summary>Offset of avail_event (after virtq_used.ring[size-1]), meaningful with VIRTIO_F_EVENT_IDX. Ref: virtio v1.2 §2.7.10.</summary>
    public int AvailEventOffset => UsedRingOffset + SplitRing.UsedRingOffset + (SplitRing.UsedElemSize * Size);

    /// <summary>Offset of descriptor <paramref name="index"/> (0 ≤ index &lt; size).</summary>
    public int DescriptorOffset(int index) => DescriptorTableOffset + (SplitRing.DescriptorSize * index);

    /// <summary>Offset of virtq_avail.ring[<paramref name="slot"/>] (0 ≤ slot &lt; size).</summary>
    public int AvailEntryOffset(int slot) => AvailableRingOffset + SplitRing.AvailRingOffset + (SplitRing.AvailEntrySize * slot);

    /// <summary>Offset of virtq_used.ring[<paramref name="slot"/>] (0 ≤ slot &lt; size).</summary>
    public int UsedElemOffset(int slot) => UsedRingOffset + SplitRing.UsedRingOffset + (SplitRing.UsedElemSize * slot);

    private static int AlignUp(int value, int alignment) => (value + alignment - 1) & ~(alignment - 1);
}
