using System.Net;
using PacketDotNet;
using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

public class PingerTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public void FullDhcpArpAndPingFlowAgainstSimulatedSlirp()
    {
        var gateway = new SimulatedGateway();
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session());

        var lease = session.AcquireLease(Token);
        var pinger = session.CreatePinger(lease.Router!, DiagnosticsTestOptions.Ping());
        var replies = pinger.Run(3, Token).ToList();

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
    public void OffSubnetTargetIsReachedThroughTheRouter()
    {
        var gateway = new SimulatedGateway();
        var session = DiagnosticsTestOptions.LeasedSession(gateway);

        var reply = session.CreatePinger(SimulatedGateway.ExternalHost, DiagnosticsTestOptions.Ping()).Send(Token);

        Assert.Equal(PingStatus.Success, reply.Status);
        Assert.Equal(SimulatedGateway.ExternalHost, reply.From);
        var request = Assert.Single(gateway.EchoRequestsFromGuest);
        Assert.Equal(SimulatedGateway.GatewayMac, request.DestinationHardwareAddress);
        Assert.Equal(SimulatedGateway.ExternalHost, request.Extract<IPv4Packet>().DestinationAddress);
        Assert.DoesNotContain(gateway.ArpRequestsFromGuest, r => r.TargetProtocolAddress.Equals(SimulatedGateway.ExternalHost));
    }

    [Fact]
    public void LostRepliesAreCountedAsTimeouts()
    {
        var gateway = new SimulatedGateway { EchoFault = seq => seq == 2 ? EchoReplyFault.Drop : EchoReplyFault.None };
        var session = DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping());

        var statuses = pinger.Run(3, Token).Select(r => r.Status).ToList();

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
    public void SpoiledReplyIsNotCounted(EchoReplyFault fault)
    {
        var gateway = new SimulatedGateway { EchoFault = _ => fault };
        var session = DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping());
        var droppedBefore = session.Counters.IgnoredFrames + session.Counters.MalformedFrames;

        var reply = pinger.Send(Token);

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
    public void CorrectReplyAfterASpoiledOneIsCountedOnce(EchoReplyFault fault)
    {
        var gateway = new SimulatedGateway { EchoFault = _ => fault, FollowFaultWithCorrectReply = true };
        var session = DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping());

        var replies = pinger.Run(2, Token).ToList();

        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(2, pinger.Statistics.Received);
    }

    [Fact]
    public void CustomPatternAndSizeAreSentAndVerified()
    {
        var gateway = new SimulatedGateway();
        var session = DiagnosticsTestOptions.LeasedSession(gateway);
        var options = new PingOptions { PayloadSize = 5, Pattern = [0xAB, 0xCD], Timeout = TimeSpan.FromMilliseconds(100) };

        var reply = session.CreatePinger(SimulatedGateway.GatewayAddress, options).Send(Token);

        Assert.Equal(PingStatus.Success, reply.Status);
        Assert.Equal(13, reply.Bytes);
        Assert.Equal(new byte[] { 0xAB, 0xCD, 0xAB, 0xCD, 0xAB }, Assert.Single(gateway.EchoRequestsFromGuest).Extract<IcmpV4Packet>().Data);
    }

    [Fact]
    public void UnresolvableNextHopIsReportedAsAnError()
    {
        var gateway = new SimulatedGateway();
        var session = DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(IPAddress.Parse("10.0.2.99"), DiagnosticsTestOptions.Ping());

        var reply = pinger.Send(Token);

        Assert.Equal(PingStatus.DestinationHostUnreachable, reply.Status);
        Assert.Equal("From 10.0.2.15 icmp_seq=1 Destination Host Unreachable", reply.ToString());
        Assert.Empty(gateway.EchoRequestsFromGuest);
        Assert.Contains("1 packets transmitted, 0 received, +1 errors, 100% packet loss", pinger.Statistics.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void OffSubnetTargetWithoutRouterThrows()
    {
        var session = new DiagnosticClient(new SimulatedGateway(), DiagnosticsTestOptions.Session());
        session.Configure(SimulatedGateway.GuestAddress, SimulatedGateway.Netmask, router: null);

        var failure = Assert.Throws<DiagnosticsException>(() => session.CreatePinger(SimulatedGateway.ExternalHost).Send(Token));

        Assert.Equal(DiagnosticsErrorReason.NoRoute, failure.Reason);
    }

    [Fact]
    public void PingingBeforeAnAddressIsConfiguredThrows()
    {
        var session = new DiagnosticClient(new SimulatedGateway(), DiagnosticsTestOptions.Session());

        var failure = Assert.Throws<DiagnosticsException>(() => session.CreatePinger(SimulatedGateway.GatewayAddress).Send(Token));

        Assert.Equal(DiagnosticsErrorReason.NotConfigured, failure.Reason);
    }

    [Fact]
    public void FullTransmitRingIsRetried()
    {
        var gateway = new SimulatedGateway { RefuseNextSends = 2 };
        var session = DiagnosticsTestOptions.LeasedSession(gateway);

        Assert.Equal(2, session.Counters.TransmitRetries);
        Assert.Equal(SimulatedGateway.GuestAddress, session.Address);
    }

    [Fact]
    public void StuckTransmitRingThrowsAfterTheTransmitTimeout()
    {
        var gateway = new SimulatedGateway { RefuseNextSends = int.MaxValue };
        var session = new DiagnosticClient(gateway, new DiagnosticClientOptions { TransmitTimeout = TimeSpan.FromMilliseconds(30) });

        var failure = Assert.Throws<DiagnosticsException>(() => session.AcquireLease(Token));

        Assert.Equal(DiagnosticsErrorReason.TransmitStalled, failure.Reason);
    }

    [Fact]
    public void CancellationEndsAWait()
    {
        var gateway = new SimulatedGateway { EchoFault = _ => EchoReplyFault.Drop };
        var session = DiagnosticsTestOptions.LeasedSession(gateway);
        var pinger = session.CreatePinger(SimulatedGateway.GatewayAddress, new PingOptions { Timeout = TimeSpan.FromSeconds(30) });
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        Assert.ThrowsAny<OperationCanceledException>(() => pinger.Send(cancellation.Token));

        Assert.True(System.Diagnostics.Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(10));
    }
}
