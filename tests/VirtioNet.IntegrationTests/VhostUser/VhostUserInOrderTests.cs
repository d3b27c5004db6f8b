using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// VIRTIO_F_IN_ORDER against DPDK 22.11's vhost-user backend, the peer of this project that offers it: thousands of
/// frames through testpmd's macswap and io forwarding on the split and the packed ring, every one checked byte for byte.
/// Ref: virtio v1.2 §2.7.9, §2.8.9.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserInOrderTests
{
    [Theory]
    [InlineData("macswap", false, OperationMode.Poll)]
    [InlineData("macswap", true, OperationMode.Poll)]
    [InlineData("io", false, OperationMode.Interrupt)]
    [InlineData("io", true, OperationMode.Interrupt)]
    public void ThousandsOfFramesCrossDpdkInOrder(string forwardMode, bool packed, OperationMode mode)
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start(forwardMode);
        var netOptions = new VirtioNetOptions { OperationMode = mode, DisabledFeatures = packed ? 0 : VirtioFeatures.RingPacked };
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath }, netOptions, cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;

        Assert.True((session.Transport.BackendFeatures & VirtioFeatures.InOrder) != 0, $"DPDK 22.11's vhost offers IN_ORDER; offered 0x{session.Transport.BackendFeatures:x}.");
        Assert.NotEqual(0UL, device.NegotiatedFeatures & VirtioFeatures.InOrder);
        Assert.Equal(packed ? VirtioNet.Virtqueues.RingLayout.Packed : VirtioNet.Virtqueues.RingLayout.Split, device.RingLayout);

        const int Count = 5000;
        Assert.Equal(Count, LoopbackTraffic.Exchange(device, Count, swapped: forwardMode == "macswap", TimeSpan.FromSeconds(30)));
        Assert.Equal(Count, device.Pairs[0].TransmitStatistics.Packets);

        IReadOnlyList<VirtqueueStateView> states = [.. device.GetQueueStates().Select(s => new VirtqueueStateView(s.QueueIndex, s.BrokenReason, s.ChainsReturnedInBatches))];
        Assert.All(states, s => Assert.Null(s.BrokenReason));
        Assert.All(states, s => Assert.NotNull(s.ChainsReturnedInBatches));
        testpmd.Dispose();
        TestContext.Current.SendDiagnosticMessage(
            $"{forwardMode} {(packed ? "packed" : "split")}: chains returned in batches " +
            string.Join(", ", states.Select(s => $"queue {s.QueueIndex}: {s.ChainsReturnedInBatches}")));
    }

    [Fact]
    public void DpdksPackedRingReturnsTransmitCompletionsInBatches()
    {
        // DPDK's packed dequeue path writes one used descriptor for a burst of transmitted chains when IN_ORDER is on
        // (its shadow used ring keeps only the last ID): the driver must take every chain of the burst back from it.
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("rxonly");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath }, new VirtioNetOptions { OperationMode = OperationMode.Poll }, cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        Assert.Equal(VirtioNet.Virtqueues.RingLayout.Packed, device.RingLayout);
        Assert.NotEqual(0UL, device.NegotiatedFeatures & VirtioFeatures.InOrder);

        byte[] frame = LoopbackTraffic.BuildFrame(device.MacAddress.Span, 1, 60);
        int sent = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (sent < 20000 && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (device.Pairs[0].TrySend(frame))
            {
                sent++;
            }
            else
            {
                device.Pairs[0].Reclaim();
            }
        }

        Assert.Equal(20000, sent);
        VirtioNet.Virtqueues.VirtqueueState tx = device.GetQueueStates().Single(s => s.QueueIndex == 1);
        Assert.Null(tx.BrokenReason);
        Assert.True(tx.ChainsReturnedInBatches > 0, "every transmit chain came back with a used descriptor of its own");
    }

    private sealed record VirtqueueStateView(int QueueIndex, string? BrokenReason, long? ChainsReturnedInBatches);
}
