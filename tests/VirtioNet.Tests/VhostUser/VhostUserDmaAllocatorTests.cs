using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.Tests.VhostUser;

/// <summary>The memfd-backed allocator on its own: addresses, alignment, zeroing, first fit, and refusals. No peer.</summary>
public sealed class VhostUserDmaAllocatorTests
{
    [Fact]
    public void RegionsAreAlignedZeroedAndTheirDeviceAddressIsTheirUserAddress()
    {
        using var memory = new VhostUserDmaAllocator(1 << 20);
        DmaRegion a = memory.Allocate(100, 64);
        a.Span.Fill(0xaa);
        memory.Free(a);
        DmaRegion b = memory.Allocate(100, 4096);

        Assert.Equal(0UL, b.DeviceAddress % 4096);
        Assert.Equal((ulong)b.Pointer, b.DeviceAddress);
        Assert.True(b.DeviceAddress >= memory.BaseAddress && b.DeviceAddress + 100 <= memory.BaseAddress + (ulong)memory.Size);
        Assert.All(b.Span.ToArray(), x => Assert.Equal(0, x));
    }

    [Fact]
    public void FreedBlocksCoalesceSoTheWholeRegionCanBeTakenAgain()
    {
        using var memory = new VhostUserDmaAllocator(64 * 1024);
        var regions = Enumerable.Range(0, 16).Select(_ => memory.Allocate(4096, 4096)).ToList();
        Assert.Equal(16, memory.AllocatedRegions);
        Assert.Throws<VirtioException>(() => memory.Allocate(1, 1));

        foreach (DmaRegion region in regions.AsEnumerable().Reverse().Where((_, i) => i % 2 == 0).Concat(regions.Where((_, i) => i % 2 == 0)))
        {
            memory.Free(region);
        }

        Assert.Equal(0, memory.AllocatedRegions);
        Assert.Equal(64 * 1024, memory.FreeBytes);
        DmaRegion all = memory.Allocate(64 * 1024, 4096);
        Assert.Equal(memory.BaseAddress, all.DeviceAddress);
    }

    [Fact]
    public void ExhaustionIsOutOfDmaMemoryAndDoubleFreeIsRefused()
    {
        using var memory = new VhostUserDmaAllocator(8192);
        var error = Assert.Throws<VirtioException>(() => memory.Allocate(8193, 8));
        Assert.Equal(VirtioErrorReason.OutOfDmaMemory, error.Reason);

        DmaRegion region = memory.Allocate(128, 8);
        memory.Free(region);
        Assert.Throws<ArgumentException>(() => memory.Free(region));
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Allocate(16, 3));
    }

    [Fact]
    public void UserAddressesOutsideTheRegionAreNotTranslated()
    {
        using var memory = new VhostUserDmaAllocator(8192);
        ulong end = memory.BaseAddress + (ulong)memory.Size;

        Assert.True(memory.TryGetUserAddress(memory.BaseAddress, 8192, out ulong user));
        Assert.Equal(memory.BaseAddress, user);
        Assert.False(memory.TryGetUserAddress(memory.BaseAddress - 1, 1, out _));
        Assert.False(memory.TryGetUserAddress(end - 4, 8, out _));
        Assert.False(memory.TryGetUserAddress(end + 4096, 1, out _));
    }

    [Fact]
    public void TheRegionIsAMemfdThatDisappearsOnDispose()
    {
        string name = $"vnet-test-{Guid.NewGuid():N}"[..24];
        int Count() => Directory.GetFileSystemEntries("/proc/self/fd").Count(e => new FileInfo(e).LinkTarget?.Contains(name, StringComparison.Ordinal) == true);
        var memory = new VhostUserDmaAllocator(4096, name);
        Assert.Equal(1, Count());
        memory.Dispose();
        Assert.Equal(0, Count());
    }
}
