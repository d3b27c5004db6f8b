using System.Net;
using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

public class ArpResolverTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GatewayResolvesToItsMacAndIsCached()
    {
        var gateway = new SimulatedGateway();
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);

        Assert.Equal(SimulatedGateway.GatewayMac, await session.ResolveAsync(SimulatedGateway.GatewayAddress, Token));
        Assert.Equal(SimulatedGateway.GatewayMac, await session.ResolveAsync(SimulatedGateway.GatewayAddress, Token));

        var request = Assert.Single(gateway.ArpRequestsFromGuest);
        Assert.Equal(SimulatedGateway.GuestAddress, request.SenderProtocolAddress);
        Assert.Equal(gateway.MacAddress, request.SenderHardwareAddress);
        Assert.Equal(SimulatedGateway.GatewayAddress, request.TargetProtocolAddress);
        Assert.Equal(0, gateway.InvalidFramesFromGuest);
    }

    [Fact]
    public async Task ExpiredEntriesAreResolvedAgain()
    {
        var gateway = new SimulatedGateway();
        var options = DiagnosticsTestOptions.Session();
        var session = new DiagnosticClient(gateway, new DiagnosticClientOptions
        {
            Dhcp = options.Dhcp,
            Arp = options.Arp,
            ArpCache = new ArpCache(lifetime: TimeSpan.Zero),
        });
        await session.AcquireLeaseAsync(Token);

        await session.ResolveAsync(SimulatedGateway.DnsAddress, Token);
        Assert.Equal(SimulatedGateway.DnsMac, await session.ResolveAsync(SimulatedGateway.DnsAddress, Token));

        Assert.Equal(2, gateway.ArpRequestsFromGuest.Count);
    }

    [Fact]
    public async Task SilentHostThrowsAfterEveryAttempt()
    {
        var gateway = new SimulatedGateway();
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var silent = IPAddress.Parse("10.0.2.99");

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.ResolveAsync(silent, Token));

        Assert.Equal(DiagnosticsErrorReason.ArpUnresolved, failure.Reason);
        Assert.Contains("10.0.2.99", failure.Message, StringComparison.Ordinal);
        Assert.Equal(session.Arp.Options.Attempts, gateway.ArpRequestsFromGuest.Count(r => r.TargetProtocolAddress.Equals(silent)));
    }

    [Fact]
    public async Task ResolvingBeforeAnAddressIsConfiguredThrows()
    {
        var session = new DiagnosticClient(new SimulatedGateway(), DiagnosticsTestOptions.Session());

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.ResolveAsync(SimulatedGateway.GatewayAddress, Token));

        Assert.Equal(DiagnosticsErrorReason.NotConfigured, failure.Reason);
    }

    [Fact]
    public void CacheEvictsTheOldestEntryWhenFull()
    {
        var cache = new ArpCache(capacity: 2);
        var mac = SimulatedGateway.GatewayMac;
        cache.Set(IPAddress.Parse("10.0.2.1"), mac);
        cache.Set(IPAddress.Parse("10.0.2.2"), mac);
        cache.Set(IPAddress.Parse("10.0.2.3"), mac);

        Assert.Equal(2, cache.Count);
        Assert.False(cache.TryGet(IPAddress.Parse("10.0.2.1"), out _));
        Assert.True(cache.TryGet(IPAddress.Parse("10.0.2.3"), out var found));
        Assert.Equal(mac, found);
    }
}
