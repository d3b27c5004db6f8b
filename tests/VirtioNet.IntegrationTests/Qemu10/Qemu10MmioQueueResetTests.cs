using VirtioNet.Core;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Qemu10;

/// <summary>
/// Per-queue reset (VIRTIO_F_RING_RESET) on QEMU 10.0's virtio-mmio: like 7.2 (<c>QueueResetTests</c>), 10.0's
/// virtio-net offers the bit on virtio-mmio, but its virtio-mmio transport still has no QueueReset register (0x0c0):
/// the write is dropped, QueueReset reads 0 at once and QueueReady stays 1. The driver reads that back, refuses to take
/// back buffers the device may still use, and the queue runs on untouched, each frame each way checked byte for byte.
/// When a QEMU honours the register this test fails, and the mmio rows of the reset test should run against it instead.
/// Ref: virtio v1.2 §2.6.1, §4.2.2, §4.2.3.2.
/// </summary>
[Trait("Peer", "Qemu10")]
public sealed class Qemu10MmioQueueResetTests
{
    [Theory]
    [InlineData("", OperationMode.Poll)]
    [InlineData("packed=on", OperationMode.Interrupt)]
    [InlineData("in_order=on", OperationMode.Interrupt)]
    public void QemuTensVirtioMmioStillIgnoresQueueResetAndTheDriverSaysSoLeavingTrafficUntouched(string deviceProperties, OperationMode mode)
    {
        string qemu = QemuRequirement.EnsureQemu10Available();
        using var wire = new UdpWire();
        var options = new QemuMachineOptions { QemuPath = qemu, ModernMmio = true, Netdev = wire.Netdev, NetDeviceProperties = deviceProperties };
        using RiscvVirtBoard board = RiscvVirtBoard.Start(options, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.RingReset);
        int seed = 0;
        Exchange(net, wire, 50, ref seed);

        foreach (int queue in new[] { 0, 1 })
        {
            var e = Assert.Throws<VirtioException>(() => net.ResetQueue(queue));
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
            Assert.Contains("QueueReady", e.Message, StringComparison.Ordinal);
            Exchange(net, wire, 100, ref seed);
        }

        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
    }

    // Frames both ways, one at a time, each checked byte for byte.
    private static void Exchange(VirtioNetDevice net, UdpWire wire, int count, ref int seed)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        for (int i = 0; i < count; i++, seed++)
        {
            int size = 60 + ((seed * 997) % 1455);
            byte[] outgoing = WireFrames.Make(size, seed);
            while (!net.Pairs[0].TrySend(outgoing))
            {
                Thread.Yield();
            }

            Assert.Equal(outgoing, wire.Receive(TimeSpan.FromSeconds(5)));
            byte[] incoming = WireFrames.Make(size, -seed - 1);
            wire.Inject(incoming);
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {seed} ({size} bytes) did not arrive");
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
        }
    }
}
