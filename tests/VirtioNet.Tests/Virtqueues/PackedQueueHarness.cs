using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>A packed queue on heap DMA memory with a software device attached, plus data buffers from the same memory.</summary>
internal sealed class PackedQueueHarness : IDisposable
{
    private readonly List<DmaRegion> _buffers = [];

    public PackedQueueHarness(int size, bool eventIdx = false, bool indirect = false, int maxIndirectChain = VirtqueueOptions.DefaultMaxIndirectChain, bool inOrder = false)
    {
        Memory = new HeapDmaAllocator();
        Options = new VirtqueueOptions
        {
            EventIdx = eventIdx,
            IndirectDesc = indirect,
            MaxIndirectChain = maxIndirectChain,
            InOrder = inOrder,
        };
        Queue = new PackedVirtqueue(0, size, Memory, Options);
        Device = new SoftwarePackedDevice(Memory, Queue, eventIdx);
    }

    public HeapDmaAllocator Memory { get; }

    public VirtqueueOptions Options { get; }

    public PackedVirtqueue Queue { get; }

    public SoftwarePackedDevice Device { get; }

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

    /// <summary>Takes every used chain back and returns the tokens in the order they came.</summary>
    public int[] TakeAllTokens()
    {
        var tokens = new List<int>();
        while (Queue.TryTakeUsed(out UsedBuffer used))
        {
            tokens.Add(used.Token);
        }

        return [.. tokens];
    }

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
