using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>The driver on DPDK's vhost-user backend: handshake, features, and frames both ways through testpmd.</summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserTrafficTests
{
    // The split ring: what docs/PERFORMANCE.md measures first. The packed ring has its own test below.
    private static readonly VirtioNetOptions PollSplit = new() { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioFeatures.RingPacked };

    private static VhostUserNetDevice Open(VhostUserOptions options, VirtioNetOptions netOptions) =>
        VhostUserNetDevice.Open(options, netOptions, cancellationToken: TestContext.Current.CancellationToken);

    [Fact]
    public void LinkIsUpAndFeaturesAreThoseTheBackendOffers()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, PollSplit);
        VirtioNetDevice device = session.Device;
        VhostUserTransport transport = session.Transport;

        Assert.True(device.IsLinkUp);
        Assert.True(device.CheckLink());
        Assert.True(transport.IsConnected);

        // DPDK's vhost offers protocol features; this frontend negotiates REPLY_ACK so that every command is acknowledged.
        Assert.NotEqual(0UL, transport.BackendFeatures & VhostUserFeatures.ProtocolFeatures);
        Assert.True(transport.NegotiatedProtocolFeatures.HasFlag(VhostUserProtocolFeatures.ReplyAck), $"negotiated {transport.NegotiatedProtocolFeatures}");

        // Every bit negotiated was offered by the backend, except the two the transport serves itself (STATUS, MAC).
        ulong served = VirtioNetFeatures.Status | VirtioNetFeatures.Mac;
        Assert.Equal(0UL, device.NegotiatedFeatures & ~served & ~transport.BackendFeatures);

        // And every bit both offered and implemented by the driver was taken, less those whose requirement is missing
        // (§2.2.1): DPDK 22.11 offers HOST_ECN without HOST_TSO4/6, which the driver must not accept.
        Assert.Equal(VirtioNetOptions.WithoutUnmetDependencies(device.OfferedFeatures & PollSplit.SupportedFeatures), device.NegotiatedFeatures);
        Assert.NotEqual(0UL, transport.BackendFeatures & VirtioNetFeatures.HostEcn);
        Assert.Equal(0UL, device.NegotiatedFeatures & VirtioNetFeatures.HostEcn);
        foreach (ulong bit in new[] { VirtioFeatures.Version1, VirtioNetFeatures.MrgRxBuf, VirtioFeatures.EventIdx, VirtioFeatures.IndirectDesc })
        {
            Assert.True((transport.BackendFeatures & bit) != 0, $"DPDK 22.11's vhost offers 0x{bit:x}; offered 0x{transport.BackendFeatures:x}.");
            Assert.True((device.NegotiatedFeatures & bit) != 0, $"0x{bit:x} was offered but not negotiated (0x{device.NegotiatedFeatures:x}).");
        }

        Assert.Equal(ReceiveMode.Mergeable, device.ReceiveMode);
        Assert.Equal(12, device.HeaderLength);
        Assert.False(device.MacFromDevice);

        // The backend's own word that the device is set up; its output arrives asynchronously, so give it a moment.
        Assert.True(testpmd.WaitForLog("virtio is now ready for processing", TimeSpan.FromSeconds(5)), testpmd.Log);
    }

    [Fact]
    public void FramesSentComeBackSwappedByMacswapInPollMode()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, PollSplit);

        const int Count = 2000;
        int received = LoopbackTraffic.Exchange(session.Device, Count, swapped: true, TimeSpan.FromSeconds(20));

        Assert.Equal(Count, received);
        Assert.Equal(Count, session.Device.Pairs[0].TransmitStatistics.Packets);
        Assert.Equal(Count, session.Device.Pairs[0].ReceiveStatistics.Packets);
    }

    [Fact]
    public void ThePackedRingCarriesFramesBothWaysThroughMacswap()
    {
        // DPDK offers RING_PACKED; its transmit completions carry the length it read, which the driver ignores for chains
        // without device-writable buffers (see PackedVirtqueue.TryTakeUsed).
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Assert.NotEqual(0UL, session.Device.NegotiatedFeatures & VirtioFeatures.RingPacked);

        const int Count = 2000;
        Assert.Equal(Count, LoopbackTraffic.Exchange(session.Device, Count, swapped: true, TimeSpan.FromSeconds(20)));
        Assert.All(session.Device.GetQueueStates(), q => Assert.Null(q.BrokenReason));
    }

    [Fact]
    public void FramesComeBackUnchangedThroughIoForwardingInInterruptMode()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("io");
        using VhostUserNetDevice session = Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath },
            new VirtioNetOptions { OperationMode = OperationMode.Interrupt, DisabledFeatures = VirtioFeatures.RingPacked });

        const int Count = 500;
        Assert.Equal(Count, LoopbackTraffic.Exchange(session.Device, Count, swapped: false, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public void TheBackendSignalsUsedReceiveBuffersOnTheCallEventfd()
    {
        // txonly: testpmd sends frames of its own into the receive queue, whose interrupts interrupt mode leaves enabled.
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("txonly");
        using VhostUserNetDevice session = Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath },
            new VirtioNetOptions { OperationMode = OperationMode.Interrupt, DisabledFeatures = VirtioFeatures.RingPacked });
        var line = session.Transport.Interrupt!;

        Assert.True(line.Wait(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken), "no call eventfd signal within 5 s");
        Assert.True(line.IsRaised);
        Assert.True((session.Transport.ReadAndAcknowledgeInterrupt() & VirtioNet.Transports.InterruptCause.UsedBuffer) != 0);
        Assert.True(line.RaiseCount > 0);

        byte[] buffer = new byte[session.Device.Pairs[0].MaxReceiveFrameLength];
        Assert.True(session.Device.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
        Assert.True(session.Device.Pairs[0].TryReceive(buffer, out int length));
        Assert.True(length >= 60, $"a frame of {length} bytes");
    }

    [Fact]
    public void BackendInClientModeConnectsToTheDriversSocket()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap", backendIsClient: true);

        // DPDK's client retries once a second: give it a few.
        using VhostUserNetDevice session = Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, SocketMode = VhostUserSocketMode.Listen, ConnectTimeout = TimeSpan.FromSeconds(10) },
            PollSplit);

        Assert.True(session.Device.IsLinkUp);
        Assert.Equal(200, LoopbackTraffic.Exchange(session.Device, 200, swapped: true, TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public void MacFromTheOptionsIsReportedAsTheDevicesMac()
    {
        byte[] mac = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = Open(new VhostUserOptions { SocketPath = testpmd.SocketPath, MacAddress = mac }, PollSplit);

        Assert.True(session.Device.MacFromDevice);
        Assert.Equal(mac, session.Device.MacAddress.ToArray());
        Assert.NotEqual(0UL, session.Device.NegotiatedFeatures & VirtioNetFeatures.Mac);

        // The MAC is the transport's, never sent to a backend that did not offer it.
        Assert.Equal(0UL, session.Transport.BackendFeatures & VirtioNetFeatures.Mac);
        Assert.Equal(50, LoopbackTraffic.Exchange(session.Device, 50, swapped: true, TimeSpan.FromSeconds(10)));
    }
}
