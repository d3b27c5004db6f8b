using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// What a receive and a transmit queue do alike when they are made: allocate their slots' DMA memory after the ring
/// (disposing the ring when that fails, so a queue half made leaks nothing), and start with every slot free.
/// </summary>
internal static class QueueSlots
{
    /// <summary>DMA memory for <paramref name="slots"/> slots of <paramref name="stride"/> bytes, each on a cache line.</summary>
    public static DmaRegion Allocate(IVirtqueue queue, IDmaAllocator dma, int slots, int stride)
    {
        try
        {
            return dma.Allocate(checked(slots * stride), 64);
        }
        catch
        {
            queue.Dispose();
            throw;
        }
    }

    /// <summary>A free-slot ring holding every slot, 0 to <paramref name="slots"/> - 1, in order.</summary>
    public static int[] AllFree(int slots)
    {
        int[] free = new int[slots];
        for (int i = 0; i < slots; i++)
        {
            free[i] = i;
        }

        return free;
    }
}
