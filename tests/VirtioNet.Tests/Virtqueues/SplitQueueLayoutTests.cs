using VirtioNet.Core;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class SplitQueueLayoutTests
{
    // §2.7.2: the legacy size of a queue, written the way the spec's virtq_size() writes it.
    private static int SpecLegacyQueueSize(int size, int align)
    {
        static int Align(int x, int a) => (x + a - 1) & ~(a - 1);
        return Align((16 * size) + (2 * (3 + size)), align) + Align((2 * 3) + (8 * size), align);
    }

    [Theory]
    // size, available ring offset, used ring offset, total (hand-computed: desc 16N, avail 6+2N at 2, used 6+8N at 4).
    [InlineData(1, 16, 24, 38)]
    [InlineData(2, 32, 44, 66)]
    [InlineData(256, 4096, 4616, 6670)]
    [InlineData(32768, 524288, 589832, 851982)]
    public void ModernLayoutPlacesEachAreaAtItsOwnAlignment(int size, int available, int used, int total)
    {
        var layout = new SplitQueueLayout(size);

        Assert.False(layout.IsLegacy);
        Assert.Equal(0, layout.DescriptorTableOffset);
        Assert.Equal(16 * size, layout.DescriptorTableLength);
        Assert.Equal(available, layout.AvailableRingOffset);
        Assert.Equal(6 + (2 * size), layout.AvailableRingLength);
        Assert.Equal(used, layout.UsedRingOffset);
        Assert.Equal(6 + (8 * size), layout.UsedRingLength);
        Assert.Equal(total, layout.TotalLength);
        Assert.Equal(0, layout.UsedRingOffset % 4);
        Assert.Equal(16, layout.Alignment);
    }

    [Theory]
    // size, used ring offset, total: from the spec's formula by hand (N=256: ALIGN(4096+518)=8192, ALIGN(2054)=4096).
    [InlineData(256, 8192, 12288)]
    [InlineData(1024, 20480, 32768)]
    public void LegacyLayoutMatchesTheSpecFormula(int size, int used, int total)
    {
        var layout = new SplitQueueLayout(size, 4096);

        Assert.True(layout.IsLegacy);
        Assert.Equal(4096, layout.Alignment);
        Assert.Equal(16 * size, layout.AvailableRingOffset);
        Assert.Equal(used, layout.UsedRingOffset);
        Assert.Equal(total, layout.TotalLength);
        Assert.Equal(SpecLegacyQueueSize(size, 4096), layout.TotalLength);
    }

    [Fact]
    public void FieldOffsetsFollowTheRingStructures()
    {
        var layout = new SplitQueueLayout(256, 4096);

        Assert.Equal(4096, layout.AvailFlagsOffset);
        Assert.Equal(4098, layout.AvailIdxOffset);
        Assert.Equal(4100, layout.AvailEntryOffset(0));
        Assert.Equal(4100 + 510, layout.AvailEntryOffset(255));
        Assert.Equal(4612, layout.UsedEventOffset);
        Assert.Equal(8192, layout.UsedFlagsOffset);
        Assert.Equal(8194, layout.UsedIdxOffset);
        Assert.Equal(8196, layout.UsedElemOffset(0));
        Assert.Equal(8196 + (255 * 8), layout.UsedElemOffset(255));
        Assert.Equal(8196 + 2048, layout.AvailEventOffset);
        Assert.Equal(16 * 7, layout.DescriptorOffset(7));
    }

    [Fact]
    public void SizeZeroMeansTheQueueIsUnavailable()
    {
        var error = Assert.Throws<VirtioException>(() => new SplitQueueLayout(0));
        Assert.Equal(VirtioErrorReason.QueueUnavailable, error.Reason);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(100)]
    [InlineData(-4)]
    [InlineData(65536)]
    [InlineData(32769)]
    public void SizesThatAreNotPowersOfTwoUpTo32768AreRejected(int size)
    {
        var error = Assert.Throws<VirtioException>(() => new SplitQueueLayout(size));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, error.Reason);
        var legacyError = Assert.Throws<VirtioException>(() => new SplitQueueLayout(size, 4096));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, legacyError.Reason);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(3000)]
    [InlineData(-4096)]
    public void LegacyAlignmentsThatAreNotPowersOfTwoOfAtLeast16AreRejected(int align)
    {
        var error = Assert.Throws<VirtioException>(() => new SplitQueueLayout(256, align));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, error.Reason);
    }
}
