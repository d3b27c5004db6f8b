using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// The asynchronous waits on a QEMU machine, where nothing but the qtest reader thread sees the device's interrupt line:
/// its <c>IRQ raise</c> callback completes a pending wait, and a configuration change handled that way reaches the
/// device's event channel with no worker waiting synchronously.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class AsyncWaitTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(false, "")]
    [InlineData(true, "")]
    [InlineData(true, "packed=on")]
    public async Task AnAsyncReceiveWaitIsCompletedByTheInterruptTheQtestReaderReports(bool modern, string deviceProperties)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = modern, Netdev = wire.Netdev, NetDeviceProperties = deviceProperties }, ct);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        VirtioNetQueuePair pair = net.Pairs[0];
        long interruptsBefore = net.UsedBufferInterrupts;

        for (int round = 1; round <= 3; round++)
        {
            ValueTask wait = pair.WaitForReceiveAsync(ct);
            Assert.False(wait.IsCompleted, "a frame was there before any was injected");
            byte[] frame = WireFrames.Make(100 + round, round);
            wire.Inject(frame);
            await wait.AsTask().WaitAsync(Generous, ct);

            byte[] received = new byte[pair.MaxReceiveFrameLength];
            Assert.True(pair.TryReceive(received, out ReceivedFrame got));
            Assert.Equal(frame, received.AsSpan(0, got.Length).ToArray());
        }

        Assert.Equal(3, pair.ReceiveStatistics.Interrupts);
        Assert.True(net.UsedBufferInterrupts > interruptsBefore, "no used-buffer interrupt was acknowledged");
        Assert.True(net.AsyncDispatches > 0, "no dispatch ran from the line's callback");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LinkDownAndUpThroughTheMonitorArriveOnTheEventChannelWhileOnlyAnAsyncWaitIsPending(bool modern)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using RiscvVirtBoard board = QemuNet.StartBoard(modern);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(ct);

        // Nobody waits synchronously: the pending async wait is what keeps the line watched.
        ValueTask pending = net.Pairs[0].WaitForReceiveAsync(cancellation.Token);
        board.SetLink(false);
        Assert.Equal(VirtioNetDeviceEventKind.LinkDown, await NextLinkEvent(net, ct));
        Assert.False(net.IsLinkUp);

        board.SetLink(true);
        Assert.Equal(VirtioNetDeviceEventKind.LinkUp, await NextLinkEvent(net, ct));
        Assert.True(net.IsLinkUp);
        Assert.Equal(2, net.ConfigurationInterrupts);

        // The wait is still pending (no frame came), and cancelling it leaves the pair working.
        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pending);
        var (_, replies) = QemuNet.DhcpAndPing(net, 2);
        Assert.All(replies, r => Assert.Equal(VirtioNet.Diagnostics.PingStatus.Success, r.Status));
    }

    private static async Task<VirtioNetDeviceEventKind> NextLinkEvent(VirtioNetDevice net, CancellationToken ct)
    {
        while (true)
        {
            VirtioNetDeviceEvent e = await net.Events.ReadAsync(ct).AsTask().WaitAsync(Generous, ct);
            if (e.Kind is VirtioNetDeviceEventKind.LinkDown or VirtioNetDeviceEventKind.LinkUp)
            {
                return e.Kind;
            }
        }
    }
}
