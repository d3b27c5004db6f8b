using System.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using VirtioNet.Transports;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary>
/// Interrupts over virtio-pci on both boards, with the test in control of timing (it plays the wire): a waiting driver
/// is woken by INTx (through the PLIC on riscv64 virt, the IOAPIC on x86_64 q35) or by an MSI-X message in guest RAM;
/// INTx arrives at the controller input the board routes the function's pin to; per-queue vectors fire for the queue
/// they belong to.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class PciInterruptTests
{
    public static TheoryData<QemuMachineKind, bool, VirtioPciInterruptMode> BoardsInterfacesAndInterrupts()
    {
        var data = new TheoryData<QemuMachineKind, bool, VirtioPciInterruptMode>();
        foreach (QemuMachineKind machine in Boards)
        {
            foreach (bool legacy in new[] { false, true })
            {
                foreach (VirtioPciInterruptMode interrupts in new[] { VirtioPciInterruptMode.Intx, VirtioPciInterruptMode.MsixShared, VirtioPciInterruptMode.MsixPerQueue })
                {
                    data.Add(machine, legacy, interrupts);
                }
            }
        }

        return data;
    }

    public static TheoryData<QemuMachineKind, bool> BoardsAndInterfaces()
    {
        var data = new TheoryData<QemuMachineKind, bool>();
        foreach (QemuMachineKind machine in Boards)
        {
            data.Add(machine, false);
            data.Add(machine, true);
        }

        return data;
    }

    private static QemuMachineKind[] Boards => [QemuMachineKind.RiscvVirt, QemuMachineKind.X86Q35];

    [Theory]
    [MemberData(nameof(BoardsInterfacesAndInterrupts))]
    public void AWaitingDriverIsWokenByTheDevicesInterrupt(QemuMachineKind machine, bool legacy, VirtioPciInterruptMode interrupts)
    {
        var (board, wire) = Start(machine, legacy);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { OperationMode = OperationMode.Interrupt }, legacy, interrupts))
        {
            byte[] frame = WireFrames.Make(100, 1);
            WireFrames.Injection injection = WireFrames.InjectOnceTheDriverSleeps(net, wire, frame);

            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.True(injection.Done, "the wait returned before the frame was injected");
            Assert.True(net.Pairs[0].ReceiveStatistics.Interrupts >= 1, "the wait ended without a used-buffer interrupt");

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
        }
    }

    /// <summary>
    /// Slot 1's INTA# on each board: PLIC source 33 on riscv64 virt (the device tree's interrupt-map swizzles INTA..D of
    /// slot 1 onto 0x21..0x24), IOAPIC input 21 on q35 (slot 1's INTA# is PIRQF, and PIRQE..H are GSIs 20..23). The
    /// neighbouring input stays quiet.
    /// </summary>
    [Theory]
    [InlineData(QemuMachineKind.RiscvVirt, false, 33, 32, "/machine/unattached/device[")]
    [InlineData(QemuMachineKind.RiscvVirt, true, 33, 32, "/machine/unattached/device[")]
    [InlineData(QemuMachineKind.X86Q35, false, 21, 20, "/machine/q35/ioapic")]
    [InlineData(QemuMachineKind.X86Q35, true, 21, 20, "/machine/q35/ioapic")]
    public void IntxOfSlotOneArrivesAtTheControllerInputTheBoardRoutesItTo(QemuMachineKind machine, bool legacy, int input, int neighbour, string controllerPath)
    {
        var (board, wire) = Start(machine, legacy);
        using (board)
        using (wire)
        using (VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { OperationMode = OperationMode.Interrupt }, legacy, VirtioPciInterruptMode.Intx))
        {
            var function = board.FindPciNetFunction();
            Assert.Equal("00:01.0", function.Address.ToString());
            Assert.Equal(1, function.InterruptPin);
            Assert.Equal(input, board.RoutePciIntx(function));
            Assert.Equal((uint)input, board.FindPciIntxLine(function));
            Assert.StartsWith(controllerPath, board.Machine.PlicQomPath, StringComparison.Ordinal);

            IInterruptLine line = board.OpenInterruptControllerLine(input);
            IInterruptLine quiet = board.OpenInterruptControllerLine(neighbour);
            long before = line.RaiseCount;
            wire.Inject(WireFrames.Make(90, 3));
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

            // QEMU writes the used ring (shared memory, seen at once) before it raises the line, and the raise reaches
            // this process as an "IRQ raise" line that the qtest reader thread parses: a wait that found the frame
            // without sleeping on the line can return before the raise is counted. Give the reader time to catch up.
            var clock = Stopwatch.StartNew();
            while (line.RaiseCount == before && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                Thread.Sleep(5);
            }

            Assert.True(
                line.RaiseCount > before,
                $"input {input} was not raised by the device's INTA# ({line}; the wait took {net.Pairs[0].ReceiveStatistics.Interrupts} interrupts)");
            Assert.Equal(0, quiet.RaiseCount);
        }
    }

    [Theory]
    [MemberData(nameof(BoardsAndInterfaces))]
    public void PerQueueVectorsFireForTheQueueTheyBelongTo(QemuMachineKind machine, bool legacy)
    {
        var (board, wire) = Start(machine, legacy);
        using (board)
        using (wire)
        {
            IVirtioTransport transport = board.OpenPciTransport(board.FindPciNetFunction(), legacy, VirtioPciInterruptMode.MsixPerQueue);
            using (transport)
            using (VirtioNetDevice net = VirtioNetDevice.Open(transport, board.Dma, new VirtioNetOptions { OperationMode = OperationMode.Interrupt }))
            {
                var queues = (IQueueInterrupts)transport;
                var rx = queues.GetQueueInterrupt(0)!;
                var tx = queues.GetQueueInterrupt(1)!;
                var config = queues.ConfigurationInterrupt!;
                Assert.Equal(1, rx.Number);
                Assert.Equal(2, tx.Number);
                Assert.Equal(0, config.Number);

                // A received frame: receiveq1's vector, and only it.
                WireFrames.Injection injection = WireFrames.InjectOnceTheDriverSleeps(net, wire, WireFrames.Make(80, 7));
                Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
                Assert.True(injection.Done, "the wait returned before the frame was injected");
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

    // A board whose net function is modern-only or legacy-only, wired to a UDP socket the test plays.
    private static (IQemuBoard Board, UdpWire Wire) Start(QemuMachineKind machine, bool legacy)
    {
        var wire = new UdpWire();
        try
        {
            return (QemuBoards.StartPci(machine, legacy ? QemuNetDeviceModel.VirtioPciLegacy : QemuNetDeviceModel.VirtioPciModern, netdev: wire.Netdev), wire);
        }
        catch
        {
            wire.Dispose();
            throw;
        }
    }
}
