using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.FlowControl;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// <see cref="VirtioNetDevice.Suspend"/> and <see cref="VirtioNetDevice.Resume"/> against DPDK's testpmd with two
/// queue pairs: the suspend stops every vring at the backend (GET_VRING_BASE), the resume starts them again at the same
/// memory with the pairs the device was told to use, the MAC, the rate limit and the priority map as they were, and
/// frames flow on every pair afterwards.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserSuspendResumeTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AfterSuspendAndResumeTestpmdCarriesFramesOnEveryPairWithTheSamePairsMacAndRateLimit(bool packed)
    {
        const int Pairs = 2;
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(Pairs, "macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, QueuePairs = Pairs },
            new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = Pairs, DisabledFeatures = packed ? 0 : VirtioFeatures.RingPacked },
            cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        VhostUserTransport transport = session.Transport;
        var limit = new TokenBucket(1_000_000, 10_000);
        device.Pairs[1].RateLimit = limit;
        var map = new PriorityQueueMap([1, 1, 0, 0, 1, 0, 1, 0], Pairs);
        device.Control.PriorityMap = map;
        byte[] mac = device.MacAddress.ToArray();
        int regions = session.Memory.AllocatedRegions;
        Assert.Equal(new long[] { 100, 100 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, Pairs, 100, TimeSpan.FromSeconds(20)));

        device.Suspend();
        Assert.True(device.IsSuspended);
        Assert.Equal(VirtioErrorReason.DeviceRecovering, Assert.Throws<VirtioException>(() => device.Pairs[0].TrySend(LoopbackTraffic.BuildFrame(mac, 1, 100))).Reason);
        device.Resume();

        Assert.False(device.IsSuspended);
        Assert.True(transport.IsConnected);
        Assert.Equal(0, transport.ReconnectCount);
        Assert.Equal(Pairs, transport.EnabledQueuePairs);
        Assert.Equal(Pairs, device.Control.ActiveQueuePairs);
        Assert.Same(limit, device.Pairs[1].RateLimit);
        Assert.Same(map, device.Control.PriorityMap);
        Assert.Equal(mac, device.MacAddress.ToArray());
        Assert.Equal(regions, session.Memory.AllocatedRegions);
        long[] received = VhostUserMultiQueueTests.ExchangeOnEveryPair(device, Pairs, 300, TimeSpan.FromSeconds(30));
        Assert.True(received.All(n => n == 300), $"after the resume: [{string.Join(", ", received)}] of 300 per pair.\n{testpmd.Log}");

        // One pair active before the suspend: one pair enabled at the backend after the resume.
        device.Control.SetActiveQueuePairs(1);
        device.Suspend();
        device.Resume();
        Assert.Equal(1, transport.EnabledQueuePairs);
        Assert.Equal(new long[] { 200 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, 1, 200, TimeSpan.FromSeconds(20)));
        Assert.Equal(2, device.Suspends);
        Assert.Equal(0, device.Recoveries);
    }
}
