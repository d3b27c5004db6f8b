using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.FlowControl;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// <see cref="VhostUserOptions.AutoReconnect"/> against DPDK's testpmd killed (SIGKILL, as a crash) and started again,
/// with testpmd listening (the driver connects again) and with testpmd as the client (the driver waits for it to connect
/// again): the same device object reports its link down and up on <see cref="VirtioNetDevice.Events"/>, keeps what it
/// was told (active pairs, priority map, rate limit, MAC) and carries frames again, with nothing done by the caller.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserAutoReconnectTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void KilledAndRestartedListeningTestpmdGetsTheSameDeviceBackWithItsPairsMapAndRateLimit()
    {
        const int Pairs = 2;
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(Pairs, "macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, QueuePairs = Pairs, AutoReconnect = true, ConnectTimeout = TimeSpan.FromSeconds(10) },
            new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = Pairs },
            cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        Assert.Equal(new long[] { 50, 50 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, Pairs, 50, TimeSpan.FromSeconds(20)));
        device.Control.SetActiveQueuePairs(1);
        var map = new PriorityQueueMap([0, 0, 0, 0, 0, 0, 0, 0], 1);
        device.Control.PriorityMap = map;
        var limit = new TokenBucket(1_000_000, 10_000);
        device.Pairs[0].RateLimit = limit;
        byte[] mac = device.MacAddress.ToArray();
        DrainEvents(device);

        testpmd.Kill();
        var seen = new List<VirtioNetDeviceEventKind>();
        Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => Collect(device, seen).Contains(VirtioNetDeviceEventKind.LinkDown), Patience), "no link-down event after testpmd was killed");
        testpmd.Restart();
        Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => session.AutoReconnects >= 1, Patience), $"no reconnection: {session.LastReconnectFailure}\n{testpmd.Log}");
        Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => Collect(device, seen).Contains(VirtioNetDeviceEventKind.LinkUp), Patience), "no link-up event after the reconnection");

        Assert.Same(device, session.Device);
        Assert.True(device.IsLinkUp);
        Assert.Null(device.RecoveryFailure);
        Assert.True(seen.IndexOf(VirtioNetDeviceEventKind.LinkDown) < seen.IndexOf(VirtioNetDeviceEventKind.LinkUp), string.Join(", ", seen));
        Assert.Contains(VirtioNetDeviceEventKind.Recovered, seen);
        Assert.Equal(1, session.Transport.EnabledQueuePairs);
        Assert.Equal(1, device.Control.ActiveQueuePairs);
        Assert.Same(map, device.Control.PriorityMap);
        Assert.Same(limit, device.Pairs[0].RateLimit);
        Assert.Equal(mac, device.MacAddress.ToArray());
        Assert.Equal(new long[] { 200 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, 1, 200, TimeSpan.FromSeconds(20)));

        // The pair left inactive before the loss comes back when asked, as on the first session.
        device.Control.SetActiveQueuePairs(2);
        Assert.Equal(2, session.Transport.EnabledQueuePairs);
        Assert.Equal(new long[] { 100, 100 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, Pairs, 100, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public void KilledAndRestartedClientTestpmdConnectsAgainToTheSameDevice()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap", backendIsClient: true);
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, SocketMode = VhostUserSocketMode.Listen, AutoReconnect = true, ConnectTimeout = TimeSpan.FromSeconds(10) },
            new VirtioNetOptions { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioFeatures.RingPacked },
            cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        Assert.Equal(50, LoopbackTraffic.Exchange(device, 50, swapped: true, TimeSpan.FromSeconds(10)));
        DrainEvents(device);

        var seen = new List<VirtioNetDeviceEventKind>();
        for (int round = 1; round <= 2; round++)
        {
            testpmd.Kill();
            Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => !device.IsLinkUp, Patience), "the link stayed up after testpmd was killed");
            testpmd.Restart();
            Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => session.AutoReconnects >= round && device.IsLinkUp, Patience), $"round {round}: no reconnection: {session.LastReconnectFailure}\n{testpmd.Log}");
            Assert.Same(device, session.Device);
            int received = LoopbackTraffic.Exchange(device, 100, swapped: true, TimeSpan.FromSeconds(20));
            Assert.True(received == 100, $"round {round}: {received} of 100 frames came back.\n{testpmd.Log}");
        }

        Collect(device, seen);
        Assert.True(seen.Count(k => k == VirtioNetDeviceEventKind.LinkDown) == 2, string.Join(", ", seen));
        Assert.Equal(2, seen.Count(k => k == VirtioNetDeviceEventKind.LinkDown));
        Assert.Equal(2, seen.Count(k => k == VirtioNetDeviceEventKind.LinkUp));
        Assert.Equal(2, session.Transport.ReconnectCount);
    }

    private static List<VirtioNetDeviceEventKind> Collect(VirtioNetDevice device, List<VirtioNetDeviceEventKind> seen)
    {
        while (device.Events.TryRead(out VirtioNetDeviceEvent e))
        {
            seen.Add(e.Kind);
        }

        return seen;
    }

    private static void DrainEvents(VirtioNetDevice device)
    {
        while (device.Events.TryRead(out _))
        {
        }
    }
}
