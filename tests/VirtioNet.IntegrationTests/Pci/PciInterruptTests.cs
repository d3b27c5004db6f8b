using System.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary>
/// Interrupts over PCI, with the test in control of timing (it plays the wire): a waiting driver is woken by INTx
/// through the PLIC or by an MSI-X message, and per-queue vectors fire for the queue they belong to.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class PciInterruptTests
{
    private static (RiscvVirtBoard Board, UdpWire Wire) Start(QemuNetDeviceModel model)
    {
        QemuRequirement.EnsureAvailable();
        var wire = new UdpWire();
        try
        {
            return (PciQemu.StartBoard(model, netdev: wire.Netdev), wire);
        }
        catch
        {
            wire.Dispose();
            throw;
        }
    }

    [Theory]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.Intx)]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixShared)]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixPerQueue)]
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.Intx)]
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared)]
    public void AWaitingDriverIsWokenByTheDevicesInterrupt(QemuNetDeviceModel model, bool legacy, VirtioPciInterruptMode interrupts)
    {
        var (board, wire) = Start(model);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { Mode = OperationMode.Interrupt }, legacy, interrupts))
        {
            byte[] frame = WireFrames.Make(100, 1);
            var clock = Stopwatch.StartNew();
            Task injector = Task.Run(async () =>
            {
                await Task.Delay(300, TestContext.Current.CancellationToken);
                wire.Inject(frame);
            }, TestContext.Current.CancellationToken);

            Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(250), "the wait returned before the frame was injected");
            Assert.True(net.ReceiveStatistics.Interrupts >= 1, "the wait ended without a used-buffer interrupt");

            byte[] received = new byte[net.MaxReceiveFrameLength];
            Assert.True(net.TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
        }
    }

    [Theory]
    [InlineData(QemuNetDeviceModel.VirtioPciModern, false)]
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true)]
    public void PerQueueVectorsFireForTheQueueTheyBelongTo(QemuNetDeviceModel model, bool legacy)
    {
        var (board, wire) = Start(model);
        using (board)
        using (wire)
        {
            IVirtioTransport transport = board.OpenPciTransport(board.FindPciNetFunction(), legacy, VirtioPciInterruptMode.MsixPerQueue);
            using (transport)
            using (VirtioNetDevice net = VirtioNetDevice.Open(transport, board.Dma, new VirtioNetOptions { Mode = OperationMode.Interrupt }))
            {
                var queues = (IQueueInterrupts)transport;
                var rx = queues.GetQueueInterrupt(0)!;
                var tx = queues.GetQueueInterrupt(1)!;
                var config = queues.ConfigurationInterrupt!;
                Assert.Equal(1, rx.Number);
                Assert.Equal(2, tx.Number);
                Assert.Equal(0, config.Number);

                // A received frame: receiveq1's vector, and only it.
                Task injector = Task.Run(async () =>
                {
                    await Task.Delay(200, TestContext.Current.CancellationToken);
                    wire.Inject(WireFrames.Make(80, 7));
                }, TestContext.Current.CancellationToken);
                Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
                Assert.Equal(1, rx.RaiseCount);
                Assert.Equal(0, config.RaiseCount);
                Assert.False(config.IsRaised);

                // A link change: the configuration vector, and not receiveq1's.
                board.SetLink(false);
                var clock = Stopwatch.StartNew();
                while (!config.IsRaised && clock.Elapsed < TimeSpan.FromSeconds(5))
                {
                    Thread.Sleep(5);
                }

                Assert.True(config.IsRaised, "set_link off did not fire the configuration vector");
                Assert.False(rx.IsRaised);
                Assert.Equal(InterruptCause.ConfigurationChange, transport.ReadAndAcknowledgeInterrupt());
                Assert.False(net.CheckLink());
            }
        }
    }
}
