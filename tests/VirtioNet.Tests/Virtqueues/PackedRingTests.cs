using VirtioNet.Core;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class PackedRingTests
{
    [Theory]
    [InlineData(true, 0x0080)]
    [InlineData(false, 0x8000)]
    public void AnAvailableDescriptorHasAvailMatchingTheWrapCounterAndUsedNot(bool wrap, int flags)
    {
        Assert.Equal(flags, PackedRing.AvailableFlags(wrap));
        Assert.True(PackedRing.IsAvailable((ushort)flags, wrap));
        Assert.False(PackedRing.IsAvailable((ushort)flags, !wrap));
        Assert.False(PackedRing.IsUsed((ushort)flags, wrap));
        Assert.False(PackedRing.IsUsed((ushort)flags, !wrap));
    }

    [Theory]
    [InlineData(true, 0x8080)]
    [InlineData(false, 0x0000)]
    public void AUsedDescriptorHasBothBitsMatchingTheWrapCounter(bool wrap, int flags)
    {
        Assert.Equal(flags, PackedRing.UsedFlags(wrap));
        Assert.True(PackedRing.IsUsed((ushort)flags, wrap));
        Assert.True(PackedRing.IsUsed((ushort)(flags | PackedRing.DescFlagWrite | PackedRing.DescFlagNext), wrap));
        Assert.False(PackedRing.IsUsed((ushort)flags, !wrap));
        Assert.False(PackedRing.IsAvailable((ushort)flags, wrap));
    }

    [Fact]
    public void OffWrapPutsTheWrapCounterInBit15()
    {
        Assert.Equal(0x8005, PackedRing.EventOffWrap(5, wrap: true));
        Assert.Equal(0x0005, PackedRing.EventOffWrap(5, wrap: false));
        Assert.Equal(0xFFFF, PackedRing.EventOffWrap(32767, wrap: true));
    }

    [Theory]
    // Batch over slots 2..4 (new = 5, same lap).
    [InlineData(2, true, 5, true, 3, true)]
    [InlineData(4, true, 5, true, 3, true)]
    [InlineData(5, true, 5, true, 3, false)]
    [InlineData(1, true, 5, true, 3, false)]
    [InlineData(3, false, 5, true, 3, false)]
    // Batch over slots 6, 7 of one lap and 0 of the next (new = 1, new lap's wrap counter 0).
    [InlineData(6, true, 1, false, 3, true)]
    [InlineData(0, false, 1, false, 3, true)]
    [InlineData(1, false, 1, false, 3, false)]
    [InlineData(5, true, 1, false, 3, false)]
    // An empty batch never needs an event; a full lap passes every slot of it.
    [InlineData(4, true, 4, true, 0, false)]
    [InlineData(4, true, 4, false, 8, true)]
    [InlineData(3, false, 4, false, 8, true)]
    [InlineData(3, true, 4, false, 8, false)]
    [InlineData(4, false, 4, false, 8, false)]
    public void NeedEventIsTrueWhenTheBatchHoldsTheNamedDescriptor(int offset, bool wrap, int newOffset, bool newWrap, int count, bool expected)
        => Assert.Equal(expected, PackedRing.NeedEvent(PackedRing.EventOffWrap(offset, wrap), newOffset, newWrap, count, 8));

    [Fact]
    public void NeedEventHoldsForTheLargestRing()
    {
        // Slots 32760..32767 of lap 1 and 0..7 of lap 0.
        Assert.True(PackedRing.NeedEvent(PackedRing.EventOffWrap(32767, true), 8, false, 16, 32768));
        Assert.True(PackedRing.NeedEvent(PackedRing.EventOffWrap(7, false), 8, false, 16, 32768));
        Assert.False(PackedRing.NeedEvent(PackedRing.EventOffWrap(8, false), 8, false, 16, 32768));
        Assert.False(PackedRing.NeedEvent(PackedRing.EventOffWrap(32759, true), 8, false, 16, 32768));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(256)]
    [InlineData(32768)]
    public void TheLayoutKeepsEveryPartAtItsAlignment(int size)
    {
        var layout = new PackedQueueLayout(size);
        Assert.Equal(0, layout.DescriptorRingOffset);
        Assert.Equal(16 * size, layout.DescriptorRingLength);
        Assert.Equal(0, layout.DriverEventSuppressionOffset % 4);
        Assert.Equal(0, layout.DeviceEventSuppressionOffset % 4);
        Assert.True(layout.DriverEventSuppressionOffset >= layout.DescriptorRingLength);
        Assert.Equal(4, Math.Abs(layout.DeviceEventSuppressionOffset - layout.DriverEventSuppressionOffset));
        Assert.Equal((16 * size) + 8, layout.TotalLength);
        Assert.Equal(16 * (size - 1), layout.DescriptorOffset(size - 1));
    }

    [Fact]
    public void ALayoutOfSizeZeroMeansTheQueueIsUnavailable()
        => Assert.Equal(VirtioErrorReason.QueueUnavailable, Assert.Throws<VirtioException>(() => new PackedQueueLayout(0)).Reason);
}
