using VirtioNet.Platform;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// A fault-injecting software platform whose DMA is not cache-coherent (not a real machine): every allocation exists
/// twice, as the CPU's view (what <see cref="DmaRegion.Span"/> and <see cref="DmaRegion.Pointer"/> give the driver) and
/// as the device's view (what the software devices reach through device addresses, via <see cref="HeapDmaAllocator.Translate"/>
/// and <see cref="HeapDmaAllocator.Map"/>). <see cref="SyncForDevice"/> copies a range CPU → device (a cache clean),
/// <see cref="SyncForCpu"/> copies it device → CPU (an invalidate); nothing else moves a byte between them. A driver
/// that forgets a sync leaves the device reading stale descriptors and frames, or itself reading a stale used ring.
/// </summary>
/// <remarks>
/// Besides the data each side then sees, the allocator counts what a real cache would lose: a clean that overwrites
/// bytes the device wrote since the last sync of that range (the driver cleaned memory the device owns), and an
/// invalidate that drops bytes the CPU wrote and never cleaned (the driver invalidated memory it had not published).
/// Both are listed in <see cref="LostWrites"/>. The model works per byte, not per cache line: it proves the ranges and
/// places of the syncs, not that driver-written and device-written fields never share a line.
/// </remarks>
public sealed class NonCoherentDmaAllocator : HeapDmaAllocator, IDmaAllocator
{
    /// <summary>Creates the allocator; device addresses start at <see cref="HeapDmaAllocator.DefaultDeviceBase"/>.</summary>
    public NonCoherentDmaAllocator()
        : base(DefaultDeviceBase, separateDeviceView: true)
    {
    }

    /// <summary>Calls of <see cref="SyncForDevice"/> so far.</summary>
    public int DeviceSyncs { get; private set; }

    /// <summary>Calls of <see cref="SyncForCpu"/> so far.</summary>
    public int CpuSyncs { get; private set; }

    /// <summary>
    /// When set, <see cref="SyncForDevice"/> writes a range back one 64-byte line at a time, lowest first, and runs this
    /// between two lines: a device reading memory while a clean is under way, which a real cache allows (it writes lines
    /// back in no promised order). A driver that publishes an index or a head's flags in the same clean as what they
    /// expose lets such a device see the index before the entries.
    /// </summary>
    public Action? BetweenLines { get; set; }

    /// <summary>Every sync that destroyed the other side's writes, as "clean/invalidate of region: n bytes".</summary>
    public List<string> LostWrites { get; } = [];

    // The lock orders syncs from a device thread (none here) and the driver; the copy itself is what a cache does.
    private readonly Lock _lock = new();

    /// <summary>Copies the range from the CPU's view to the device's view (after the base class's hook).</summary>
    public override void SyncForDevice(DmaRegion region)
    {
        base.SyncForDevice(region);
        lock (_lock)
        {
            DeviceSyncs++;
            int destroyed = CopyToDevice(region, BetweenLines);
            if (destroyed > 0)
            {
                LostWrites.Add($"clean of {region} overwrote {destroyed} bytes the device had written");
            }
        }
    }

    /// <summary>Copies the range from the device's view to the CPU's view.</summary>
    public void SyncForCpu(DmaRegion region)
    {
        lock (_lock)
        {
            CpuSyncs++;
            int discarded = CopyToCpu(region);
            if (discarded > 0)
            {
                LostWrites.Add($"invalidate of {region} discarded {discarded} bytes the CPU had written");
            }
        }
    }
}
