using System.Diagnostics;
using System.Text.Json;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.VhostUser;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// The transmit watchdog against QEMU stopped through QMP (<c>stop</c>, then <c>cont</c>): a stopped machine's
/// virtio-net defers every transmit (it neither sends nor returns buffers), so the driver's ring fills, the watchdog
/// counts the timeout and recovers the device, and after <c>cont</c> the receive filter it had set is still in force
/// at QEMU and DHCP and ping work.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class TransmitWatchdogTests
{
    [Theory]
    [InlineData(OperationMode.Interrupt)]
    [InlineData(OperationMode.Poll)]
    public void QemuStoppedThroughQmpIsATransmitTimeoutAndAfterContTheRecoveredDeviceKeepsItsFilterAndPings(OperationMode mode)
    {
        using RiscvVirtBoard board = QemuNet.StartBoard(modern: true);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions
        {
            OperationMode = mode,
            AutoRecover = true,
            TransmitTimeout = TimeSpan.FromMilliseconds(500),
        });
        net.Control.SetPromiscuous(false);
        Assert.False(Filter(board).GetProperty("promiscuous").GetBoolean());

        board.Machine.Monitor.Execute("stop");
        try
        {
            int sent = 0;
            for (uint i = 0; i < 4096 && net.Pairs[0].TrySend(LoopbackTraffic.BuildFrame(net.MacAddress.Span, i, 200)); i++)
            {
                sent++;
            }

            Assert.InRange(sent, 1, 4095);
            Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => net.TransmitTimeouts >= 1, TimeSpan.FromSeconds(30)), "no transmit timeout while QEMU was stopped");
            Assert.True(VhostUserTransmitWatchdogTests.WaitUntil(() => net.Recoveries >= 1 || net.RecoveryFailure is not null, TimeSpan.FromSeconds(30)), "no recovery after the transmit timeout");
        }
        finally
        {
            board.Machine.Monitor.Execute("cont");
        }

        Assert.Null(net.RecoveryFailure);
        Assert.True(net.Pairs[0].TransmitStatistics.TransmitTimeouts >= 1);
        Assert.True(net.RecoveryDroppedTransmits > 0);

        // What the device was told before is in force again, and traffic flows.
        Assert.False(Filter(board).GetProperty("promiscuous").GetBoolean());
        var (_, replies) = QemuNet.DhcpAndPing(net, 3);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
    }

    internal static JsonElement Filter(RiscvVirtBoard board) => board.Machine.Monitor.Execute("query-rx-filter")[0];
}
