using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The transmit watchdog against DPDK's testpmd stopped with SIGSTOP: the backend keeps the socket and the rings but
/// takes nothing from the transmit ring, the driver fills it, the watchdog counts the timeout and (with automatic
/// recovery) recovers the device once testpmd continues, and frames flow again.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserTransmitWatchdogTests
{
    [Theory]
    [InlineData(OperationMode.Poll)]
    [InlineData(OperationMode.Interrupt)]
    public void TestpmdStoppedWithSigstopIsATransmitTimeoutAndAfterSigcontTheRecoveredDeviceCarriesFrames(OperationMode mode)
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        var netOptions = new VirtioNetOptions
        {
            OperationMode = mode,
            DisabledFeatures = VirtioFeatures.RingPacked,
            AutoRecover = true,
            TransmitTimeout = TimeSpan.FromMilliseconds(500),
        };
        using VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPath, ReplyTimeout = TimeSpan.FromSeconds(20) }, netOptions, cancellationToken: TestContext.Current.CancellationToken);
        VirtioNetDevice device = session.Device;
        Assert.Equal(100, LoopbackTraffic.Exchange(device, 100, swapped: true, TimeSpan.FromSeconds(10)));
        Assert.Equal(0, device.TransmitTimeouts);

        testpmd.Pause();
        try
        {
            // The ring fills: testpmd takes nothing.
            int sent = 0;
            for (uint i = 0; i < 4096 && device.Pairs[0].TrySend(LoopbackTraffic.BuildFrame(device.MacAddress.Span, 0x7000_0000 + i, 200)); i++)
            {
                sent++;
            }

            Assert.InRange(sent, 1, 4095);
            Assert.True(WaitUntil(() => device.TransmitTimeouts >= 1, TimeSpan.FromSeconds(30)), "no transmit timeout while testpmd was stopped");
            Assert.True(device.Pairs[0].TransmitStatistics.TransmitTimeouts >= 1);
        }
        finally
        {
            testpmd.Resume();
        }

        // The recovery started by the watchdog waits for testpmd's answers, which come now.
        Assert.True(WaitUntil(() => device.Recoveries >= 1, TimeSpan.FromSeconds(30)), $"no recovery after the transmit timeout: {device.RecoveryFailure}\n{testpmd.Log}");
        Assert.Null(device.RecoveryFailure);
        Assert.True(device.RecoveryDroppedTransmits > 0);
        Assert.True(session.Transport.IsConnected);
        Assert.Equal(0, session.Transport.ReconnectCount);

        DrainStale(device);
        int received = LoopbackTraffic.Exchange(device, 300, swapped: true, TimeSpan.FromSeconds(30));
        Assert.True(received == 300, $"{received} of 300 frames came back after the recovery.\n{testpmd.Log}");

        var kinds = new List<VirtioNetDeviceEventKind>();
        while (device.Events.TryRead(out VirtioNetDeviceEvent e))
        {
            kinds.Add(e.Kind);
        }

        Assert.Contains(VirtioNetDeviceEventKind.TransmitTimeout, kinds);
        Assert.Contains(VirtioNetDeviceEventKind.Recovered, kinds);
    }

    // Frames sent while testpmd was stopped may still come back once it continues (before the reset took them away);
    // they carry sequence numbers from 0x70000000 on and are not part of the exchange after.
    internal static void DrainStale(VirtioNetDevice device)
    {
        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        for (int round = 0; round < 100 && device.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken); round++)
        {
            while (device.Pairs[0].TryReceive(buffer, out int length))
            {
                Assert.True(length >= 18 && buffer[14] == 0x70, "a frame that was not in flight came back");
            }
        }
    }

    internal static bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(20);
        }

        return true;
    }
}
