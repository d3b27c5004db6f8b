using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Pci;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Q35;

/// <summary>The wire-test pattern on q35: the test plays the wire (UDP socket netdev) and checks thousands of frames byte for byte both ways.</summary>
[Trait("Peer", "Qemu")]
public sealed class Q35WireTests
{
    [Theory]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "")]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixPerQueue, OperationMode.Interrupt, "event_idx=off")]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.None, OperationMode.Poll, "packed=on,mrg_rxbuf=off,host_mtu=9000")]
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "event_idx=off")]
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "")]
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.None, OperationMode.Poll, "")]
    public void ThousandsOfFramesCrossTheWireIntactOnQ35(QemuNetDeviceModel model, bool legacy, VirtioPciInterruptMode interrupts, OperationMode mode, string deviceProperties)
    {
        using var wire = new UdpWire();
        using X86Q35Board board = Q35Qemu.StartBoard(model, deviceProperties, wire.Netdev);
        using VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { Mode = mode }, legacy, interrupts);
        CancellationToken ct = TestContext.Current.CancellationToken;
        int maxFrame = net.Mtu + 14;
        byte[] received = new byte[net.MaxReceiveFrameLength];
        const int Count = 2000;
        for (int i = 0; i < Count; i++)
        {
            int size = 60 + ((i * 997) % (maxFrame - 59));

            byte[] outgoing = WireFrames.Make(size, i);
            while (!net.TrySend(outgoing))
            {
                Thread.Yield();
            }

            byte[]? seen = wire.Receive(TimeSpan.FromSeconds(5));
            Assert.NotNull(seen);
            Assert.Equal(outgoing, seen);

            byte[] incoming = WireFrames.Make(size, -i);
            wire.Inject(incoming);
            Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {i} ({size} bytes) did not arrive");
            Assert.True(net.TryReceive(received, out int length));
            Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
        }

        Assert.Equal(Count, net.ReceiveStatistics.Packets);
        Assert.Equal(Count, net.TransmitStatistics.Packets);
        Assert.Equal(0, net.ReceiveStatistics.Errors);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        Assert.Contains(legacy ? "legacy" : "modern", net.TransportDescription, StringComparison.Ordinal);
    }
}
