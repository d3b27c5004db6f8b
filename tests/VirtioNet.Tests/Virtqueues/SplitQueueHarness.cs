using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>A split queue on heap DMA memory with a software device attached, plus data buffers from the same memory.</summary>
internal sealed class SplitQueueHarness : IDisposable
{
    private readonly List<DmaRegion> _buffers = [];

    public SplitQueueHarness(int size, bool eventIdx = false, bool indirect = false, int legacyAlign = 0, int maxIndirectChain = VirtqueueOptions.DefaultMaxIndirectChain, bool inOrder = false)
    {
        Memory = new HeapDmaAllocator();
        Options = new VirtqueueOptions
        {
            EventIdx = eventIdx,
            IndirectDesc = indirect,
            LegacyQueueAlign = legacyAlign,
            MaxIndirectChain = maxIndirectChain,
            InOrder = inOrder,
        };
        Queue = new SplitVirtqueue(0, size, Memory, Options);
        Device = new SoftwareSplitDevice(Memory, Queue, eventIdx);
    }

    public HeapDmaAllocator Memory { get; }

    public VirtqueueOptions Options { get; }

    public SplitVirtqueue Queue { get; }

    public SoftwareSplitDevice Device { get; }

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

    public void Dispose()
    {
        Queue.Dispose();
        foreach (DmaRegion region in _buffers)
        {
            Memory.Free(region);
        }

        _buffers.Clear();
        Memory.Dispose();
    }
}
