using System.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Pci;
using VirtioNet.Net;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using VirtioNet.Transports;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Q35;

/// <summary>
/// Interrupts on q35, with the test in control of timing (it plays the wire): a waiting driver is woken by INTx
/// arriving at the IOAPIC input the board computed, or by an MSI-X message in guest RAM.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class Q35InterruptTests
{
    private static (X86Q35Board Board, UdpWire Wire) Start(QemuNetDeviceModel model)
    {
        var wire = new UdpWire();
        try
        {
            return (Q35Qemu.StartBoard(model, netdev: wire.Netdev), wire);
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
    [InlineData(QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixPerQueue)]
    public void AWaitingDriverIsWokenByTheDevicesInterruptOnQ35(QemuNetDeviceModel model, bool legacy, VirtioPciInterruptMode interrupts)
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
    public void IntxOfSlotOneArrivesAtIoapicInput21ThroughPirqF(QemuNetDeviceModel model, bool legacy)
    {
        var (board, wire) = Start(model);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { Mode = OperationMode.Interrupt }, legacy, VirtioPciInterruptMode.Intx))
        {
            var function = board.FindPciNetFunction();
            Assert.Equal("00:01.0", function.Address.ToString());
            Assert.Equal(1, function.InterruptPin);
            Assert.Equal(21, board.RoutePciIntx(function));
            Assert.Equal("/machine/q35/ioapic", board.Machine.PlicQomPath);

            IInterruptLine gsi21 = board.Machine.OpenIoapicLine(21);
            IInterruptLine gsi20 = board.Machine.OpenIoapicLine(20);
            long before = gsi21.RaiseCount;
            wire.Inject(WireFrames.Make(90, 3));
            Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

            // The frame can be in the used ring before QEMU's "IRQ raise 21" line has been read from the qtest socket (the
            // wait may even find the frame without sleeping): the raise is asserted once it had time to arrive.
            Assert.True(SpinWait.SpinUntil(() => gsi21.RaiseCount > before, TimeSpan.FromSeconds(5)), "GSI 21 (PIRQF) was not raised by the device's INTA#");
            Assert.Equal(0, gsi20.RaiseCount);
        }
    }

    [Fact]
    public void PerQueueVectorsFireForTheQueueTheyBelongToOnQ35()
    {
        var (board, wire) = Start(QemuNetDeviceModel.VirtioPciModern);
        using (board)
        using (wire)
        {
            IVirtioTransport transport = board.OpenPciTransport(board.FindPciNetFunction(), legacy: false, VirtioPciInterruptMode.MsixPerQueue);
            using (transport)
            using (VirtioNetDevice net = VirtioNetDevice.Open(transport, board.Dma, new VirtioNetOptions { Mode = OperationMode.Interrupt }))
            {
                var queues = (IQueueInterrupts)transport;
                var rx = queues.GetQueueInterrupt(0)!;
                var config = queues.ConfigurationInterrupt!;

                Task injector = Task.Run(async () =>
                {
                    await Task.Delay(200, TestContext.Current.CancellationToken);
                    wire.Inject(WireFrames.Make(80, 7));
                }, TestContext.Current.CancellationToken);
                Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
                Assert.Equal(1, rx.RaiseCount);
                Assert.Equal(0, config.RaiseCount);

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
