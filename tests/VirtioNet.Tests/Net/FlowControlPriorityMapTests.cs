using VirtioNet.Net.FlowControl;
using VirtioNet.Net.Vlan;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>The 802.1p priority → queue pair map.</summary>
public sealed class FlowControlPriorityMapTests
{
    [Theory]
    [InlineData(1, new[] { 0, 0, 0, 0, 0, 0, 0, 0 })]
    [InlineData(2, new[] { 0, 0, 0, 0, 1, 1, 1, 1 })]
    [InlineData(3, new[] { 0, 0, 0, 1, 1, 1, 2, 2 })]
    [InlineData(4, new[] { 0, 0, 1, 1, 2, 2, 3, 3 })]
    [InlineData(8, new[] { 0, 1, 2, 3, 4, 5, 6, 7 })]
    [InlineData(16, new[] { 0, 1, 2, 3, 4, 5, 6, 7 })]
    public void TheDefaultMapSpreadsPrioritiesInContiguousBands(int pairs, int[] expected)
    {
        PriorityQueueMap map = PriorityQueueMap.Spread(pairs);
        Assert.Equal(expected, Enumerable.Range(0, 8).Select(map.QueueFor));
        Assert.Equal(pairs, map.QueuePairs);
    }

    [Fact]
    public void ATaggedFrameMapsByItsPriorityBits()
    {
        var map = new PriorityQueueMap([1, 1, 0, 0, 0, 0, 2, 2], 3);
        Assert.Equal(2, map.QueueFor(new VlanTag(100, priority: 7)));
        Assert.Equal(1, map.QueueFor(new VlanTag(100, priority: 0)));
        Assert.Equal(0, map.QueueFor(new VlanTag(4095, priority: 3)));
    }

    [Fact]
    public void AMapNamingAMissingQueueOrWithTheWrongLengthIsRefused()
    {
        ArgumentException wrongQueue = Assert.Throws<ArgumentException>(() => new PriorityQueueMap([0, 0, 0, 0, 0, 0, 0, 2], 2));
        Assert.Contains("Priority 7 maps to queue pair 2", wrongQueue.Message, StringComparison.Ordinal);
        ArgumentException wrongLength = Assert.Throws<ArgumentException>(() => new PriorityQueueMap([0, 0, 0], 2));
        Assert.Contains("has 3", wrongLength.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => PriorityQueueMap.Spread(2).QueueFor(8));
    }
}
