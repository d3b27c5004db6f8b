using VirtioNet.Core;
using VirtioNet.Platform;
using Xunit;

namespace VirtioNet.Tests.Platform;

public sealed class AddressRangeAllocatorTests
{
    [Fact]
    public void BlocksAreAlignedInsideTheRangeAndNeverOverlap()
    {
        var ranges = new AddressRangeAllocator(0x1003, 0x10000);
        var taken = new List<(ulong Start, ulong Length)>();
        foreach ((ulong length, ulong alignment) in new[] { (100UL, 64UL), (4096UL, 4096UL), (1UL, 1UL), (3000UL, 16UL) })
        {
            Assert.True(ranges.TryTake(length, alignment, out ulong address));
            Assert.Equal(0UL, address % alignment);
            Assert.True(address >= ranges.Start && address + length <= ranges.End);
            Assert.DoesNotContain(taken, t => address < t.Start + t.Length && t.Start < address + length);
            taken.Add((address, length));
        }

        Assert.Equal(4, ranges.TakenBlocks);
    }

    [Fact]
    public void ReturningEverythingInAnyOrderGivesTheWholeRangeBack()
    {
        var ranges = new AddressRangeAllocator(0x8000_0000, 1 << 20);
        var taken = new List<(ulong, ulong)>();
        for (int i = 0; i < 50; i++)
        {
            Assert.True(ranges.TryTake((ulong)(100 + (i * 37)), 64, out ulong address));
            taken.Add((address, (ulong)(100 + (i * 37))));
        }

        foreach (var (address, length) in taken.OrderBy(t => (t.Item1 * 2654435761) % 97))
        {
            Assert.True(ranges.TryReturn(address, length));
        }

        Assert.Equal(1UL << 20, ranges.FreeBytes);
        Assert.Equal(1, ranges.FreeBlocks);
        Assert.Equal(0, ranges.TakenBlocks);
    }

    [Fact]
    public void DoubleForeignAndWrongLengthReturnsAreRefusedAndChangeNothing()
    {
        var ranges = new AddressRangeAllocator(0, 0x1000);
        Assert.True(ranges.TryTake(0x100, 16, out ulong address));
        ulong free = ranges.FreeBytes;

        Assert.False(ranges.TryReturn(address, 0x80));
        Assert.False(ranges.TryReturn(address + 16, 0x100));
        Assert.Equal(free, ranges.FreeBytes);
        Assert.True(ranges.TryReturn(address, 0x100));
        Assert.False(ranges.TryReturn(address, 0x100));
    }

    [Fact]
    public void ARequestThatFitsNowhereIsFalseNotAnException()
    {
        var ranges = new AddressRangeAllocator(0, 0x1000);
        Assert.False(ranges.TryTake(0x1001, 1, out _));
        Assert.True(ranges.TryTake(0x800, 1, out _));
        Assert.False(ranges.TryTake(0x801, 1, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => ranges.TryTake(16, 3, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AddressRangeAllocator(ulong.MaxValue - 10, 100));
    }

    [Fact]
    public void ADmaRequestIsCheckedAsTheAllocatorContractSaysAndExhaustionIsOutOfDmaMemoryNamingTheRange()
    {
        var ranges = new AddressRangeAllocator(0x1000, 0x1000);
        Assert.Throws<ArgumentOutOfRangeException>(() => ranges.TakeForDma(0, 64, "test RAM"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ranges.TakeForDma(-1, 64, "test RAM"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ranges.TakeForDma(64, 0, "test RAM"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ranges.TakeForDma(64, 48, "test RAM"));
        Assert.Equal(0, ranges.TakenBlocks);

        ulong address = ranges.TakeForDma(0x800, 0x800, "test RAM");
        Assert.Equal(0x1000UL, address);
        var error = Assert.Throws<VirtioException>(() => ranges.TakeForDma(0x801, 1, "test RAM"));
        Assert.Equal(VirtioErrorReason.OutOfDmaMemory, error.Reason);
        Assert.Contains("test RAM", error.Message);
        Assert.Contains("2048 bytes free in 1 blocks", error.Message);
    }
}
