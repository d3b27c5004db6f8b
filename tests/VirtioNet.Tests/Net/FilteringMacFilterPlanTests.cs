using System.Net.NetworkInformation;
using VirtioNet.Net.Filtering;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>The MAC table's overflow decisions: which lists are sent and which receive modes stand in for the rest.</summary>
public sealed class FilteringMacFilterPlanTests
{
    private static List<PhysicalAddress> Unicast(int count) =>
        [.. Enumerable.Range(0, count).Select(i => new PhysicalAddress([0x02, 0, 0, 0, (byte)(i >> 8), (byte)i]))];

    private static List<PhysicalAddress> Multicast(int count) =>
        [.. Enumerable.Range(0, count).Select(i => new PhysicalAddress([0x01, 0x00, 0x5e, 0, (byte)(i >> 8), (byte)i]))];

    [Fact]
    public void ListsThatFitAreSentWholeWithoutFallback()
    {
        MacFilterPlan plan = MacFilterPlan.Create(Unicast(3), Multicast(61), capacity: 64, allUnicastAvailable: true);
        Assert.Equal(3, plan.Unicast.Count);
        Assert.Equal(61, plan.Multicast.Count);
        Assert.False(plan.UnicastOverflow);
        Assert.False(plan.MulticastOverflow);
        Assert.Equal(ReceiveFilterFlags.None, plan.FallbackFlags);
    }

    [Fact]
    public void TooManyUnicastAddressesFallBackToAllUnicastWhenAvailable()
    {
        MacFilterPlan plan = MacFilterPlan.Create(Unicast(65), Multicast(2), capacity: 64, allUnicastAvailable: true);
        Assert.True(plan.UnicastOverflow);
        Assert.Empty(plan.Unicast);
        Assert.Equal(2, plan.Multicast.Count);
        Assert.Equal(ReceiveFilterFlags.AllUnicast, plan.FallbackFlags);
    }

    [Fact]
    public void TooManyUnicastAddressesFallBackToPromiscuousWithoutRxExtra()
    {
        MacFilterPlan plan = MacFilterPlan.Create(Unicast(65), [], capacity: 64, allUnicastAvailable: false);
        Assert.Equal(ReceiveFilterFlags.Promiscuous, plan.FallbackFlags);
    }

    [Fact]
    public void MulticastOverflowsWhatTheUnicastEntriesLeave()
    {
        MacFilterPlan plan = MacFilterPlan.Create(Unicast(60), Multicast(5), capacity: 64, allUnicastAvailable: true);
        Assert.False(plan.UnicastOverflow);
        Assert.True(plan.MulticastOverflow);
        Assert.Equal(60, plan.Unicast.Count);
        Assert.Empty(plan.Multicast);
        Assert.Equal(ReceiveFilterFlags.AllMulticast, plan.FallbackFlags);
    }

    [Fact]
    public void BothListsOverflowingTurnOnBothFallbacks()
    {
        MacFilterPlan plan = MacFilterPlan.Create(Unicast(10), Multicast(10), capacity: 4, allUnicastAvailable: true);
        Assert.Equal(ReceiveFilterFlags.AllUnicast | ReceiveFilterFlags.AllMulticast, plan.FallbackFlags);
    }

    [Fact]
    public void DuplicatesCountOnce()
    {
        List<PhysicalAddress> twice = [.. Unicast(40), .. Unicast(40)];
        MacFilterPlan plan = MacFilterPlan.Create(twice, [], capacity: 64, allUnicastAvailable: true);
        Assert.False(plan.UnicastOverflow);
        Assert.Equal(40, plan.Unicast.Count);
    }

    [Fact]
    public void AMulticastAddressInTheUnicastListIsRefused() =>
        Assert.Throws<ArgumentException>(() => MacFilterPlan.Create(Multicast(1), [], 64, true));

    [Fact]
    public void AUnicastAddressInTheMulticastListIsRefused() =>
        Assert.Throws<ArgumentException>(() => MacFilterPlan.Create([], Unicast(1), 64, true));

    [Fact]
    public void AnAddressOfTheWrongLengthIsRefused() =>
        Assert.Throws<ArgumentException>(() => MacFilterPlan.Create([new PhysicalAddress([2, 0, 0, 0])], [], 64, true));
}
