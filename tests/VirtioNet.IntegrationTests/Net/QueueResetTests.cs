using VirtioNet.Core;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// Per-queue reset (VIRTIO_F_RING_RESET, which QEMU 7.2's virtio-net offers on modern transports) against real QEMU on
/// modern virtio-pci: receiveq1 is reset while frames keep leaving through transmitq1, then transmitq1 is reset, and
/// frames flow both ways again, every one checked byte for byte on the wire (the UDP socket netdev). On virtio-mmio
/// QEMU 7.2 offers the feature but ignores the register, which the driver detects. Ref: virtio v1.2 §2.6.1, §4.2.2.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class QueueResetTests
{
    [Theory]
    [InlineData("", OperationMode.Poll, VirtioPciInterruptMode.None)]
    [InlineData("", OperationMode.Interrupt, VirtioPciInterruptMode.Intx)]
    [InlineData("packed=on,event_idx=off", OperationMode.Interrupt, VirtioPciInterruptMode.MsixPerQueue)]
    [InlineData("packed=on", OperationMode.Poll, VirtioPciInterruptMode.None)]
    public void AResetReceiveQueueComesBackWhileTransmitGoesOnAndThenTheTransmitQueueToo(string deviceProperties, OperationMode mode, VirtioPciInterruptMode interrupts)
    {
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using RiscvVirtBoard board = QemuBoards.StartRiscvVirtPci(QemuNetDeviceModel.VirtioPciModern, deviceProperties, wire.Netdev);
        using VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { OperationMode = mode }, legacy: false, interrupts);
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.RingReset);
        Assert.Equal(deviceProperties.Contains("packed=on", StringComparison.Ordinal) ? VirtioNet.Virtqueues.RingLayout.Packed : VirtioNet.Virtqueues.RingLayout.Split, net.RingLayout);

        int slots = net.Pairs[0].TransmitSlotsFree;
        int seed = 0;
        Exchange(net, wire, 100, ref seed);

        // receiveq1 goes down and comes back between two transmits; frames keep leaving the whole time.
        for (int i = 0; i < 40; i++)
        {
            if (i == 20)
            {
                int detached = net.ResetQueue(0);
                Assert.Equal(net.Pairs[0].ReceiveQueue.BufferCount, detached);
            }

            Send(net, wire, WireFrames.Make(60 + (i * 31), 1000 + i));
        }

        Exchange(net, wire, 100, ref seed);

        // Now transmitq1, with frames in flight the device may or may not have sent: whatever it sent arrives intact.
        for (int i = 0; i < 8; i++)
        {
            Assert.True(net.Pairs[0].TrySend(WireFrames.Make(100 + i, 2000 + i)));
        }

        net.ResetQueue(1);
        while (wire.Receive(TimeSpan.FromMilliseconds(300)) is { } late)
        {
            Assert.Equal(0xb5, late[13]);
        }

        Assert.Equal(slots, net.Pairs[0].TransmitSlotsFree);
        Exchange(net, wire, 200, ref seed);

        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
    }

    [Theory]
    [InlineData("")]
    [InlineData("packed=on")]
    public void QemusVirtioMmioIgnoresQueueResetAndTheDriverSaysSoLeavingTrafficUntouched(string deviceProperties)
    {
        // QEMU 7.2's virtio-net offers RING_RESET on virtio-mmio too, but its virtio-mmio has no QueueReset register: the
        // write is dropped and QueueReady stays 1. The driver reads that back, refuses to take buffers the device may
        // still use, and the queue runs on as if the reset had not been asked for.
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        var options = new QemuMachineOptions { ModernMmio = true, Netdev = wire.Netdev, NetDeviceProperties = deviceProperties };
        using RiscvVirtBoard board = RiscvVirtBoard.Start(options, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.RingReset);
        int seed = 0;
        Exchange(net, wire, 50, ref seed);

        var e = Assert.Throws<VirtioException>(() => net.ResetQueue(0));

        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        Assert.Contains("QueueReady", e.Message, StringComparison.Ordinal);
        Exchange(net, wire, 200, ref seed);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
    }

    private static void Send(VirtioNetDevice net, UdpWire wire, byte[] frame)
    {
        while (!net.Pairs[0].TrySend(frame))
        {
            Thread.Yield();
        }

        Assert.Equal(frame, wire.Receive(TimeSpan.FromSeconds(5)));
    }

    // Frames both ways, one at a time, each checked byte for byte.
    private static void Exchange(VirtioNetDevice net, UdpWire wire, int count, ref int seed)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        for (int i = 0; i < count; i++, seed++)
        {
            int size = 60 + ((seed * 997) % 1455);
            Send(net, wire, WireFrames.Make(size, seed));

            byte[] incoming = WireFrames.Make(size, -seed - 1);
            wire.Inject(incoming);
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {seed} ({size} bytes) did not arrive");
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
        }
    }
}
