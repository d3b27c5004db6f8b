using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// What a receive and a transmit queue do alike when they are made: allocate their slots' DMA memory after the ring
/// (disposing the ring when that fails, so a queue half made leaks nothing), and round their slots to cache lines.
/// </summary>
internal static class QueueSlots
{
    /// <summary>The cache line every slot (and, on receive, every frame) starts on.</summary>
    public const int CacheLine = 64;

    /// <summary><paramref name="bytes"/> rounded up to a whole number of cache lines.</summary>
    public static int ToCacheLines(int bytes) => (bytes + CacheLine - 1) & ~(CacheLine - 1);

    /// <summary>DMA memory for <paramref name="slots"/> slots of <paramref name="stride"/> bytes, on a cache line.</summary>
    public static DmaRegion Allocate(IVirtqueue queue, IDmaAllocator dma, int slots, int stride)
    {
        try
        {
            return dma.Allocate(checked(slots * stride), CacheLine);
        }
        catch
        {
            queue.Dispose();
            throw;
        }
    }
}
