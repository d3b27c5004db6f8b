using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Qemu;

/// <summary>The DMA allocator over a real shared mapping of a file, as QEMU's RAM is mapped (no QEMU needed).</summary>
[Trait("Peer", "Qemu")]
public sealed class GuestRamAllocatorTests : IDisposable
{
    private const ulong RamBase = 0x8000_0000;
    private const int RamSize = 1024 * 1024;

    private readonly string _file = Path.Combine(Path.GetTempPath(), $"vnet-alloc-test-{Guid.NewGuid():n}");
    private readonly GuestRam _ram;

    public GuestRamAllocatorTests()
    {
        using (FileStream stream = File.Create(_file))
        {
            stream.SetLength(RamSize);
        }

        _ram = GuestRam.Map(_file, RamBase, RamSize);

        // Dirty memory, so that zeroing is observable.
        _ram.GetSpan(RamBase, RamSize).Fill(0xAA);
    }

    public void Dispose()
    {
        _ram.Unmap();
        File.Delete(_file);
    }

    [Fact]
    public void RegionsAreAlignedZeroedInsideTheRangeAndDisjoint()
    {
        var allocator = new GuestRamAllocator(_ram, RamBase + 0x1000, RamBase + 0x8_0000);
        var regions = new List<DmaRegion>();
        int[] lengths = [1, 100, 4096, 6, 16 * 1024, 33, 2048];
        int[] alignments = [1, 16, 4096, 2, 4096, 64, 2048];

        for (int i = 0; i < lengths.Length; i++)
        {
            DmaRegion region = allocator.Allocate(lengths[i], alignments[i]);
            Assert.Equal(lengths[i], region.Length);
            Assert.Equal(0UL, region.DeviceAddress % (ulong)alignments[i]);
            Assert.True(region.DeviceAddress >= allocator.Start && region.DeviceAddress + (ulong)region.Length <= allocator.End);
            Assert.Equal(_ram.Translate(region.DeviceAddress, (ulong)region.Length), region.Pointer);
            Assert.True(region.Span.IndexOfAnyExcept((byte)0) < 0, $"Region {i} is not zeroed.");
            regions.Add(region);
        }

        foreach (DmaRegion a in regions)
        {
            foreach (DmaRegion b in regions.Where(r => r != a))
            {
                bool disjoint = a.DeviceAddress + (ulong)a.Length <= b.DeviceAddress || b.DeviceAddress + (ulong)b.Length <= a.DeviceAddress;
                Assert.True(disjoint, $"{a} overlaps {b}.");
            }
        }
    }

    [Fact]
    public void ExhaustionThrowsOutOfDmaMemoryAndFreeingEverythingMakesTheWholeRangeAvailableAgain()
    {
        const int Range = 64 * 1024;
        var allocator = new GuestRamAllocator(_ram, RamBase + 0x1_0000, RamBase + 0x1_0000 + Range);
        var regions = new List<DmaRegion>();
        for (int i = 0; i < Range / 4096; i++)
        {
            regions.Add(allocator.Allocate(4096, 4096));
        }

        VirtioException e = Assert.Throws<VirtioException>(() => allocator.Allocate(1, 1));
        Assert.Equal(VirtioErrorReason.OutOfDmaMemory, e.Reason);
        Assert.Equal(0UL, allocator.FreeBytes);

        // Freed out of order: only coalescing of neighbours makes one block of the whole range again.
        foreach (int i in new[] { 3, 0, 15, 1, 2, 7, 5, 4, 6, 14, 8, 10, 9, 12, 11, 13 })
        {
            regions[i].Span.Fill(0x55);
            allocator.Free(regions[i]);
        }

        Assert.Equal((ulong)Range, allocator.FreeBytes);
        DmaRegion whole = allocator.Allocate(Range, 4096);
        Assert.Equal(allocator.Start, whole.DeviceAddress);
        Assert.True(whole.Span.IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void FreeingTwiceOrFreeingAForeignRegionThrows()
    {
        var allocator = new GuestRamAllocator(_ram, RamBase + 0x1000, RamBase + 0x2_0000);
        DmaRegion region = allocator.Allocate(256, 64);
        allocator.Free(region);

        Assert.Throws<ArgumentException>(() => allocator.Free(region));
        Assert.Throws<ArgumentException>(() => allocator.Free(new DmaRegion(region.Pointer, region.DeviceAddress + 64, 64)));
        Assert.Throws<ArgumentOutOfRangeException>(() => allocator.Allocate(16, 3));
    }

    [Fact]
    public void ARangeOutsideGuestRamIsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new GuestRamAllocator(_ram, RamBase + 0x1000, RamBase + RamSize + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GuestRamAllocator(_ram, RamBase - 1, RamBase + 0x1000));
    }

    [Fact]
    public void ConcurrentAllocationsNeverOverlap()
    {
        var allocator = new GuestRamAllocator(_ram, RamBase, RamBase + RamSize);
        var owner = new int[RamSize / 64];
        int failures = 0;

        Parallel.For(1, 5, worker =>
        {
            for (int round = 0; round < 200; round++)
            {
                DmaRegion region = allocator.Allocate(64 * (1 + (round % 7)), 64);
                int first = (int)((region.DeviceAddress - RamBase) / 64);
                for (int i = first; i < first + (region.Length / 64); i++)
                {
                    if (Interlocked.CompareExchange(ref owner[i], worker, 0) != 0)
                    {
                        Interlocked.Increment(ref failures);
                    }
                }

                for (int i = first; i < first + (region.Length / 64); i++)
                {
                    Volatile.Write(ref owner[i], 0);
                }

                allocator.Free(region);
            }
        });

        Assert.Equal(0, failures);
        Assert.Equal((ulong)RamSize, allocator.FreeBytes);
    }
}
