using System.Net;
using PacketDotNet;
using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

public class PingerTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FullDhcpArpAndPingFlowAgainstSimulatedSlirp()
    {
        var gateway = new SimulatedGateway();
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session());

        var lease = await session.AcquireLeaseAsync(Token);
        var pinger = session.CreatePinger(lease.Router!, DiagnosticsTestOptions.Ping());
        var replies = await pinger.RunAsync(3, Token).ToListAsync(Token);

        Assert.Equal([1, 2, 3], replies.Select(r => (int)r.Sequence));
        Assert.All(replies, reply =>
        {
            Assert.Equal(PingStatus.Success, reply.Status);
            Assert.Equal(SimulatedGateway.GatewayAddress, reply.From);
            Assert.Equal(64, reply.Bytes);
            Assert.Equal(255, reply.TimeToLive);
            Assert.True(reply.RoundTripTime > TimeSpan.Zero);
        });

        // slirp asked for our MAC before forwarding the first reply, and we answered.
        Assert.Equal(gateway.MacAddress, gateway.GuestMacLearnedByArp);
        Assert.Equal(1, session.Counters.ArpRequestsAnswered);

        var statistics = pinger.Statistics;
        Assert.Equal(3, statistics.Transmitted);
        Assert.Equal(3, statistics.Received);
        Assert.Equal(0, statistics.PacketLossPercent);
        Assert.StartsWith("--- 10.0.2.2 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss", statistics.ToString(), StringComparison.Ordinal);

        Assert.Equal(3, gateway.EchoRequestsFromGuest.Count);
        Assert.All(gateway.EchoRequestsFromGuest, frame =>
        {
            var icmp = frame.Extract<IcmpV4Packet>();
            Assert.Equal(pinger.Identifier, icmp.Id);
            Assert.Equal(56, icmp.Data.Length);
            Assert.Equal(SimulatedGateway.GatewayMac, frame.DestinationHardwareAddress);
        });
        Assert.Equal(0, gateway.InvalidFramesFromGuest);
        Assert.Equal(0, session.Counters.MalformedFrames);
    }

    [Fact]
    public async Task OffSubnetTargetIsReachedThroughTheRouter()
    {
        var gateway = new SimulatedGateway();
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);

        var reply = await session.CreatePinger(SimulatedGateway.ExternalHost, DiagnosticsTestOptions.Ping()).SendAsync(Token);

        Assert.Equal(PingStatus.Success, reply.Status);
        Assert.Equal(SimulatedGateway.ExternalHost, reply.From);
        var request = Assert.Single(gateway.EchoRequestsFromGuest);
        Assert.Equal(SimulatedGateway.GatewayMac, request.DestinationHardwareAddress);
        Assert.Equal(SimulatedGateway.ExternalHost, request.Extract<IPv4Packet>().DestinationAddress);
        Assert.DoesNotContain(gateway.ArpRequestsFromGuest, r => r.TargetProtocolAddress.Equals(SimulatedGateway.ExternalHost));
    }

    [Fact]
    public async Task LostRepliesAreCountedAsTimeouts()
    {
        var gateway = new SimulatedGateway { EchoFault = seq => seq == 2 ? EchoReplyFault.Drop : EchoReplyFault.None };
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping());

        var statuses = await pinger.RunAsync(3, Token).Select(r => r.Status).ToListAsync(Token);

        Assert.Equal([PingStatus.Success, PingStatus.TimedOut, PingStatus.Success], statuses);
        Assert.Equal(3, pinger.Statistics.Transmitted);
        Assert.Equal(2, pinger.Statistics.Received);
        Assert.Contains("3 packets transmitted, 2 received, 33.3333% packet loss", pinger.Statistics.ToString(), StringComparison.Ordinal);
        Assert.True(pinger.Statistics.Elapsed >= DiagnosticsTestOptions.Ping().Timeout);
    }

    [Theory]
    [InlineData(EchoReplyFault.WrongIdentifier)]
    [InlineData(EchoReplyFault.WrongSequence)]
    [InlineData(EchoReplyFault.WrongPayload)]
    [InlineData(EchoReplyFault.BadChecksum)]
    public async Task SpoiledReplyIsNotCounted(EchoReplyFault fault)
    {
        var gateway = new SimulatedGateway { EchoFault = _ => fault };
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping());
        var droppedBefore = session.Counters.IgnoredFrames + session.Counters.MalformedFrames;

        var reply = await pinger.SendAsync(Token);

        Assert.Equal(PingStatus.TimedOut, reply.Status);
        Assert.Equal(0, pinger.Statistics.Received);
        Assert.Equal(1, session.Counters.IgnoredFrames + session.Counters.MalformedFrames - droppedBefore);
        Assert.Equal(fault == EchoReplyFault.BadChecksum ? 1 : 0, session.Counters.MalformedFrames);
    }

    [Theory]
    [InlineData(EchoReplyFault.WrongIdentifier)]
    [InlineData(EchoReplyFault.WrongSequence)]
    [InlineData(EchoReplyFault.WrongPayload)]
    [InlineData(EchoReplyFault.BadChecksum)]
    public async Task CorrectReplyAfterASpoiledOneIsCountedOnce(EchoReplyFault fault)
    {
        var gateway = new SimulatedGateway { EchoFault = _ => fault, FollowFaultWithCorrectReply = true };
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping());

        var replies = await pinger.RunAsync(2, Token).ToListAsync(Token);

        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(2, pinger.Statistics.Received);
    }

    [Fact]
    public async Task CustomPatternAndSizeAreSentAndVerified()
    {
        var gateway = new SimulatedGateway();
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var options = new PingOptions { PayloadSize = 5, Pattern = [0xAB, 0xCD], Timeout = TimeSpan.FromMilliseconds(100) };

        var reply = await session.CreatePinger(SimulatedGateway.GatewayAddress, options).SendAsync(Token);

        Assert.Equal(PingStatus.Success, reply.Status);
        Assert.Equal(13, reply.Bytes);
        Assert.Equal(new byte[] { 0xAB, 0xCD, 0xAB, 0xCD, 0xAB }, Assert.Single(gateway.EchoRequestsFromGuest).Extract<IcmpV4Packet>().Data);
    }

    [Fact]
    public async Task UnresolvableNextHopIsReportedAsAnError()
    {
        var gateway = new SimulatedGateway();
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(IPAddress.Parse("10.0.2.99"), DiagnosticsTestOptions.Ping());

        var reply = await pinger.SendAsync(Token);

        Assert.Equal(PingStatus.DestinationHostUnreachable, reply.Status);
        Assert.Equal("From 10.0.2.15 icmp_seq=1 Destination Host Unreachable", reply.ToString());
        Assert.Empty(gateway.EchoRequestsFromGuest);
        Assert.Contains("1 packets transmitted, 0 received, +1 errors, 100% packet loss", pinger.Statistics.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OffSubnetTargetWithoutRouterThrows()
    {
        var session = new DiagnosticClient(new SimulatedGateway(), DiagnosticsTestOptions.Session());
        session.Configure(SimulatedGateway.GuestAddress, SimulatedGateway.Netmask, router: null);

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.CreatePinger(SimulatedGateway.ExternalHost).SendAsync(Token));

        Assert.Equal(DiagnosticsErrorReason.NoRoute, failure.Reason);
    }

    [Fact]
    public async Task PingingBeforeAnAddressIsConfiguredThrows()
    {
        var session = new DiagnosticClient(new SimulatedGateway(), DiagnosticsTestOptions.Session());

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.CreatePinger(SimulatedGateway.GatewayAddress).SendAsync(Token));

        Assert.Equal(DiagnosticsErrorReason.NotConfigured, failure.Reason);
    }

    [Fact]
    public async Task FullTransmitRingIsRetried()
    {
        var gateway = new SimulatedGateway { RefuseNextSends = 2 };
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);

        Assert.Equal(2, session.Counters.TransmitRetries);
        Assert.Equal(SimulatedGateway.GuestAddress, session.Address);
    }

    [Fact]
    public async Task StuckTransmitRingThrowsAfterTheTransmitTimeout()
    {
        var gateway = new SimulatedGateway { RefuseNextSends = int.MaxValue };
        var session = new DiagnosticClient(gateway, new DiagnosticClientOptions { TransmitTimeout = TimeSpan.FromMilliseconds(30) });

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.AcquireLeaseAsync(Token));

        Assert.Equal(DiagnosticsErrorReason.TransmitStalled, failure.Reason);
    }

    [Fact]
    public async Task CancellationEndsAWait()
    {
        var gateway = new SimulatedGateway { EchoFault = _ => EchoReplyFault.Drop };
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, new PingOptions { Timeout = TimeSpan.FromSeconds(30) });
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pinger.SendAsync(cancellation.Token));

        Assert.True(System.Diagnostics.Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(10));
    }
}
