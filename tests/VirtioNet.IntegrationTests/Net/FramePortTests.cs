using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// The diagnostic client's port over a QEMU device, with the test at the other end of the cable (a UDP socket netdev):
/// its asynchronous receive wait ends at its timeout when nothing comes, is completed by the device's interrupt when a
/// frame does, and a cancelled wait leaves the pair ready for the next one.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class FramePortTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(false, "", OperationMode.Interrupt)]
    [InlineData(true, "packed=on", OperationMode.Interrupt)]
    [InlineData(true, "", OperationMode.Poll)]
    public async Task AReceiveWaitTimesOutOnASilentWireThenDeliversAFrameSentWhileItWaits(bool modern, string deviceProperties, OperationMode mode)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = modern, Netdev = wire.Netdev, NetDeviceProperties = deviceProperties }, ct);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });
        var port = new VirtioNetFramePort(net);
        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];

        // Nothing on the wire: the wait ends at its timeout with no frame, twice (the timeout source is made again).
        Assert.Equal(0, await port.ReceiveAsync(buffer, TimeSpan.FromMilliseconds(200), ct).AsTask().WaitAsync(Generous, ct));
        Assert.Equal(0, await port.ReceiveAsync(buffer, TimeSpan.FromMilliseconds(200), ct).AsTask().WaitAsync(Generous, ct));

        for (int round = 1; round <= 3; round++)
        {
            ValueTask<int> receive = port.ReceiveAsync(buffer, Generous, ct);
            Assert.False(receive.IsCompleted, "a frame was there before any was injected");
            byte[] frame = WireFrames.Make(80 + round, round);
            wire.Inject(frame);
            int length = await receive.AsTask().WaitAsync(Generous, ct);
            Assert.Equal(frame, buffer.AsSpan(0, length).ToArray());
        }

        if (mode == OperationMode.Interrupt)
        {
            Assert.True(net.Pairs[0].ReceiveStatistics.Interrupts >= 3, "the frames did not wake the waits by interrupt");
        }
    }

    [Fact]
    public async Task ACancelledReceiveWaitLeavesThePairReadyForTheNextFrame()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = wire.Netdev }, ct);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        var port = new VirtioNetFramePort(net);
        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];

        using (var cancellation = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            ValueTask<int> pending = port.ReceiveAsync(buffer, Generous, cancellation.Token);
            Assert.False(pending.IsCompleted);
            await cancellation.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pending);
        }

        byte[] frame = WireFrames.Make(120, 7);
        ValueTask<int> next = port.ReceiveAsync(buffer, Generous, ct);
        wire.Inject(frame);
        int length = await next.AsTask().WaitAsync(Generous, ct);
        Assert.Equal(frame, buffer.AsSpan(0, length).ToArray());
    }
}
