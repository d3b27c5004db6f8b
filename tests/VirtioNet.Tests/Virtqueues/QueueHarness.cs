using System.Diagnostics.CodeAnalysis;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// A queue of either layout on heap DMA memory with a software device attached, plus data buffers from the same memory.
/// The layout-neutral members are what tests of the <see cref="IVirtqueue"/> contract drive; <see cref="SplitQueueHarness"/>
/// and <see cref="PackedQueueHarness"/> add the typed queue and device for layout-specific tests.
/// </summary>
internal abstract class QueueHarness : IDisposable
{
    private readonly List<DmaRegion> _buffers = [];

    protected QueueHarness(VirtqueueOptions options)
    {
        Memory = new HeapDmaAllocator();
        Options = options;
    }

    public HeapDmaAllocator Memory { get; }

    public VirtqueueOptions Options { get; }

    /// <summary>The queue, through the contract both layouts implement.</summary>
    public abstract IVirtqueue Virtqueue { get; }

    /// <summary>True when the queue runs with VIRTIO_F_IN_ORDER (not part of <see cref="IVirtqueue"/>).</summary>
    public abstract bool InOrder { get; }

    /// <summary>A harness of <paramref name="layout"/>.</summary>
    public static QueueHarness Create(RingLayout layout, int size, bool eventIdx = false, bool indirect = false, int maxIndirectChain = VirtqueueOptions.DefaultMaxIndirectChain, bool inOrder = false) =>
        layout == RingLayout.Split
            ? new SplitQueueHarness(size, eventIdx, indirect, maxIndirectChain: maxIndirectChain, inOrder: inOrder)
            : new PackedQueueHarness(size, eventIdx, indirect, maxIndirectChain, inOrder);

    /// <summary>A zeroed data buffer in DMA memory, freed with the harness.</summary>
    public DmaRegion Buffer(int length)
    {
        DmaRegion region = Memory.Allocate(length, 8);
        _buffers.Add(region);
        return region;
    }

    /// <summary>A device-readable buffer holding <paramref name="content"/>.</summary>
    public VirtqBuffer Readable(ReadOnlySpan<byte> content)
    {
        DmaRegion region = Buffer(content.Length);
        content.CopyTo(region.Span);
        return new VirtqBuffer(region.DeviceAddress, (uint)region.Length, DeviceWritable: false);
    }

    /// <summary>A device-writable buffer of <paramref name="length"/> bytes.</summary>
    public VirtqBuffer Writable(int length, out DmaRegion region)
    {
        region = Buffer(length);
        return new VirtqBuffer(region.DeviceAddress, (uint)length, DeviceWritable: true);
    }

    /// <summary>A chain of one readable buffer of <paramref name="length"/> bytes.</summary>
    public VirtqBuffer[] OneReadable(int length = 16) => [Readable(new byte[length])];

    /// <summary>A chain of <paramref name="buffers"/> device-writable buffers of <paramref name="length"/> bytes each.</summary>
    public VirtqBuffer[] WritableChain(int buffers, int length)
    {
        var chain = new VirtqBuffer[buffers];
        for (int i = 0; i < buffers; i++)
        {
            chain[i] = Writable(length, out _);
        }

        return chain;
    }

    /// <summary>Takes every used chain back, in the order they came.</summary>
    public List<UsedBuffer> TakeAll()
    {
        var taken = new List<UsedBuffer>();
        while (Virtqueue.TryTakeUsed(out UsedBuffer used))
        {
            taken.Add(used);
        }

        return taken;
    }

    /// <summary>The device pops every available chain.</summary>
    public abstract List<DeviceChain> PopAll();

    /// <summary>The device pops the next available chain.</summary>
    public abstract bool TryPop([NotNullWhen(true)] out DeviceChain? chain);

    /// <summary>The device returns <paramref name="chain"/> with <paramref name="length"/> bytes written, in a used entry (descriptor) of its own.</summary>
    public abstract void Complete(DeviceChain chain, uint length);

    /// <summary>The device returns <paramref name="chains"/>, popped in this order, as one VIRTIO_F_IN_ORDER batch (§2.7.9, §2.8.9).</summary>
    public abstract void CompleteInOrderBatch(IReadOnlyList<DeviceChain> chains, uint lastLength);

    /// <summary>
    /// The device's way to lie about a batch of <paramref name="chains"/> one-descriptor chains: one used entry (split)
    /// or used descriptor (packed) naming <paramref name="id"/> with <paramref name="length"/>, then used.idx moved by
    /// the batch size (split) or a skip over that many slots (packed).
    /// </summary>
    public abstract void PushUsedBatch(ushort id, uint length, int chains);

    /// <summary>A new software device on the same ring, as after a reset: it starts at the ring's first entry.</summary>
    public abstract void AttachNewDevice();

    public void Dispose()
    {
        Virtqueue.Dispose();
        foreach (DmaRegion region in _buffers)
        {
            Memory.Free(region);
        }

        _buffers.Clear();
        Memory.Dispose();
    }
}
