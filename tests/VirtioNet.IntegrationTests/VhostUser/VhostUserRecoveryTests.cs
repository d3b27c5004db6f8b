using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// <see cref="VirtioNetDevice.Recover"/> over vhost-user against DPDK's testpmd: the device reset becomes
/// SET_VRING_ENABLE 0 and GET_VRING_BASE for every started vring (the backend lets go of it), and the set-up again
/// sends SET_FEATURES, SET_MEM_TABLE and SET_VRING_NUM/BASE/ADDR/CALL/KICK/ENABLE at the same memory, with the rings'
/// indexes back at 0. If the backend kept its old ring positions, nothing would come back afterwards.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserRecoveryTests
{
    private const int Recoveries = 3;

    [Theory]
    [InlineData(false, OperationMode.Poll)]
    [InlineData(false, OperationMode.Interrupt)]
    [InlineData(true, OperationMode.Poll)]
    public void RecoverStartsTheBackendsRingsAgainAndFramesFlowEachTimeWithNothingLeaked(bool packed, OperationMode mode)
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        var netOptions = new VirtioNetOptions { OperationMode = mode, DisabledFeatures = packed ? 0 : VirtioFeatures.RingPacked };
        using VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, netOptions, cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        Assert.Equal(packed ? VirtioNet.Virtqueues.RingLayout.Packed : VirtioNet.Virtqueues.RingLayout.Split, device.RingLayout);
        var events = new List<DeviceRecoveredEventArgs>();
        device.Recovered += (_, e) => events.Add(e);

        // The first exchange pays for what the runtime opens once; the counts are taken after it.
        Assert.Equal(100, LoopbackTraffic.Exchange(device, 100, swapped: true, TimeSpan.FromSeconds(10)));
        int descriptors = OpenDescriptors.CountVhostUserKinds();
        int regions = session.Memory.AllocatedRegions;

        for (int round = 1; round <= Recoveries; round++)
        {
            // Frames in flight when the rings are stopped: the backend may or may not have sent them back; either way
            // they are accounted for, and none of them is mistaken for a frame of the exchange below.
            for (uint i = 0; i < 16; i++)
            {
                device.Pairs[0].TrySend(LoopbackTraffic.BuildFrame(device.MacAddress.Span, 0x7000_0000 + i, 200));
            }

            device.Recover();

            Assert.Equal(round, device.Recoveries);
            Assert.Equal(round, events.Count);
            Assert.True(device.CheckHealth());
            Assert.True(device.IsLinkUp);
            Assert.True(session.Transport.IsConnected);
            Assert.Equal(0, session.Transport.ReconnectCount);
            DrainStale(device);
            int received = LoopbackTraffic.Exchange(device, 300, swapped: true, TimeSpan.FromSeconds(20));
            Assert.True(received == 300, $"round {round}: {received} of 300 frames came back after the recovery.\n{testpmd.CommandLine}\n{testpmd.Log}");
        }

        Assert.Equal(descriptors, OpenDescriptors.CountVhostUserKinds());
        Assert.Equal(regions, session.Memory.AllocatedRegions);
        Assert.Equal(0, device.Pairs[0].ReceiveStatistics.Errors);
        Assert.Equal(device.RecoveryDroppedTransmits, events.Sum(e => e.DroppedTransmits));
    }

    [Fact]
    public void AfterRecoverEveryPairIsEnabledAgainAtTheBackendAndCarriesFramesOnItsOwnQueue()
    {
        const int Pairs = 2;
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(Pairs, "macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, QueuePairs = Pairs },
            new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = Pairs },
            cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        VhostUserTransport transport = session.Transport;
        Assert.Equal(new long[] { 100, 100 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, Pairs, 100, TimeSpan.FromSeconds(20)));
        int descriptors = OpenDescriptors.CountVhostUserKinds();

        device.Recover();

        // The reset left one pair enabled (§5.1.6.5.5); the restored VQ_PAIRS_SET enabled the second again.
        Assert.Equal(Pairs, transport.EnabledQueuePairs);
        Assert.Equal(Pairs, device.Control.ActiveQueuePairs);
        long[] received = VhostUserMultiQueueTests.ExchangeOnEveryPair(device, Pairs, 300, TimeSpan.FromSeconds(30));
        Assert.True(received.All(n => n == 300), $"after the recovery: [{string.Join(", ", received)}] of 300 per pair.\n{testpmd.Log}");

        // With one pair active, recovery leaves the second disabled at the backend, as before it.
        device.Control.SetActiveQueuePairs(1);
        device.Recover();
        Assert.Equal(1, transport.EnabledQueuePairs);
        Assert.Equal(1, device.Control.ActiveQueuePairs);
        Assert.Equal(new long[] { 200 }, VhostUserMultiQueueTests.ExchangeOnEveryPair(device, 1, 200, TimeSpan.FromSeconds(20)));
        Assert.Equal(descriptors, OpenDescriptors.CountVhostUserKinds());
    }

    // Frames sent before a recovery that the backend had already looped back into receive buffers are gone with the
    // reset; any that arrive later (sent by the backend before it stopped) carry sequence numbers from 0x70000000 on.
    private static void DrainStale(VirtioNetDevice device)
    {
        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        while (device.Pairs[0].TryReceive(buffer, out int length))
        {
            Assert.True(length >= 18 && buffer[14] == 0x70, "a frame that was not in flight came back");
        }
    }
}
