using System.Net;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Matrix;

/// <summary>
/// Every combination QEMU accepts of {riscv64 virt mmio-legacy, mmio, pci, pci-legacy; x86_64 q35 pci, pci-legacy} ×
/// {split, packed} × {interrupt, poll} × {event_idx on, off}: DHCP and ping through slirp, then a sustained exchange
/// of frames of every size in both directions with contents compared byte for byte (the test plays the wire). Legacy
/// interfaces have no packed ring, so those rows are left out. PCI interrupt rows use INTx with event_idx on and
/// per-queue MSI-X with it off, so both kinds run on every PCI transport. Every row runs against the system's QEMU 7.2
/// and against QEMU 10.0.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class TransportMatrixTests
{
    private const int Frames = 2000;
    private const int Pings = 3;

    public static TheoryData<string, string, bool, OperationMode, bool> Combinations()
    {
        var data = new TheoryData<string, string, bool, OperationMode, bool>();
        (string Machine, string Transport, bool Modern)[] transports =
        [
            ("riscv64-virt", "mmio-legacy", false),
            ("riscv64-virt", "mmio", true),
            ("riscv64-virt", "pci", true),
            ("riscv64-virt", "pci-legacy", false),
            ("x86_64-q35", "pci", true),
            ("x86_64-q35", "pci-legacy", false),
        ];
        foreach (var (machine, transport, modern) in transports)
        {
            foreach (bool packed in modern ? new[] { false, true } : [false])
            {
                foreach (OperationMode mode in new[] { OperationMode.Interrupt, OperationMode.Poll })
                {
                    foreach (bool eventIdx in new[] { true, false })
                    {
                        data.Add(machine, transport, packed, mode, eventIdx);
                    }
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void PingAndThousandsOfVerifiedFramesWork(string machine, string transport, bool packed, OperationMode mode, bool eventIdx)
    {
        QemuRequirement.EnsureAvailable(machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt);
        PingAndExchangeFrames(new MatrixRow(machine, transport, packed, mode, eventIdx), _ => { });
    }

    /// <summary>
    /// The same matrix against QEMU 10.0 (bookworm-backports, beside the system's 7.2): the device's ring and transport
    /// code changed between the two (in-order support, the packed ring's event handling), and users run both.
    /// </summary>
    [Theory]
    [Trait("Peer", "Qemu10")]
    [MemberData(nameof(Combinations))]
    public void PingAndThousandsOfVerifiedFramesWorkOnQemu10(string machine, string transport, bool packed, OperationMode mode, bool eventIdx)
    {
        var row = new MatrixRow(machine, transport, packed, mode, eventIdx);
        PingAndExchangeFrames(row with { QemuPath = QemuRequirement.EnsureQemu10Available(row.Kind) }, _ => { });
    }

    /// <summary>One row of a transport matrix: the machine, the transport, the ring, the mode, event_idx, and the QEMU that runs it.</summary>
    /// <param name="Machine">"riscv64-virt" or "x86_64-q35".</param>
    /// <param name="Transport">"mmio-legacy", "mmio", "pci" or "pci-legacy".</param>
    /// <param name="Packed">packed=on.</param>
    /// <param name="Mode">Interrupt or poll (PCI interrupt rows: INTx with event_idx on, per-queue MSI-X with it off).</param>
    /// <param name="EventIdx">event_idx=on.</param>
    /// <param name="QemuPath">The QEMU binary; null for the machine's default (the system's QEMU 7.2).</param>
    /// <param name="ExtraProperties">More virtio-net properties, comma-separated (for example <c>in_order=on</c>).</param>
    internal sealed record MatrixRow(string Machine, string Transport, bool Packed, OperationMode Mode, bool EventIdx, string? QemuPath = null, string ExtraProperties = "")
    {
        public QemuMachineKind Kind => Machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt;
    }

    /// <summary>
    /// The matrix's check for one row: the device brought up as the row asks (transport, ring, event_idx, the MAC from the
    /// device, the link up), DHCP and <see cref="Pings"/> pings through slirp, then <see cref="Frames"/> frames of every
    /// size each way with the test as the wire, compared byte for byte and counted each way (no interrupt taken in poll
    /// mode, some over the exchange in interrupt mode). <paramref name="checkDevice"/> runs on each brought-up
    /// device before traffic (what a row negotiates beyond the ring and event_idx), and again after the exchange.
    /// The caller has checked that the row's QEMU is there.
    /// </summary>
    internal static void PingAndExchangeFrames(MatrixRow row, Action<VirtioNetDevice> checkDevice)
    {
        // DHCP and ping through QEMU's user network.
        using (IQemuBoard board = Start(row, "user,id=n0"))
        using (VirtioNetDevice net = Open(board, row))
        {
            AssertNegotiation(net, row);
            checkDevice(net);
            var (lease, replies) = QemuNet.DhcpAndPing(net, Pings);
            Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
            Assert.Equal(Pings, replies.Count);
            Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.True(net.Pairs[0].ReceiveStatistics.Packets >= Pings + 2, $"{net.Pairs[0].ReceiveStatistics.Packets} frames received: fewer than the DHCP offer and ack and the echo replies");
            if (row.Mode == OperationMode.Poll)
            {
                Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Interrupts);
            }
        }

        // The sustained exchange, with the test as the other end of the cable.
        using var wire = new UdpWire();
        using (IQemuBoard board = Start(row, wire.Netdev))
        using (VirtioNetDevice net = Open(board, row))
        {
            AssertNegotiation(net, row);
            checkDevice(net);
            WireFrames.ExchangeOneAtATime(net, wire, Frames);
            AssertInterruptsTaken(net, row);
            checkDevice(net);
        }
    }

    internal static IQemuBoard Start(MatrixRow row, string netdev)
    {
        string properties = $"packed={(row.Packed ? "on" : "off")},event_idx={(row.EventIdx ? "on" : "off")}";
        var options = new QemuMachineOptions
        {
            Machine = row.Kind,
            ModernMmio = row.Transport == "mmio",
            NetDeviceModel = row.Transport switch
            {
                "pci" => QemuNetDeviceModel.VirtioPciModern,
                "pci-legacy" => QemuNetDeviceModel.VirtioPciLegacy,
                _ => QemuNetDeviceModel.VirtioMmio,
            },
            Netdev = netdev,
            NetDeviceProperties = row.ExtraProperties.Length == 0 ? properties : $"{properties},{row.ExtraProperties}",
        };
        if (row.QemuPath is not null)
        {
            options = options with { QemuPath = row.QemuPath };
        }

        return QemuBoards.Start(options);
    }

    internal static VirtioNetDevice Open(IQemuBoard board, MatrixRow row)
    {
        board.PciInterruptMode = row.Mode == OperationMode.Poll ? VirtioPciInterruptMode.None
            : row.EventIdx ? VirtioPciInterruptMode.Intx : VirtioPciInterruptMode.MsixPerQueue;
        return board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = row.Mode });
    }

    private static void AssertNegotiation(VirtioNetDevice net, MatrixRow row)
    {
        bool modern = row.Transport is "mmio" or "pci";
        Assert.StartsWith(
            row.Transport switch
            {
                "mmio-legacy" => "virtio-mmio v1 @ ",
                "mmio" => "virtio-mmio v2 @ ",
                "pci" => "virtio-pci modern @ 00:01.0",
                _ => "virtio-pci legacy @ 00:01.0",
            },
            net.TransportDescription,
            StringComparison.Ordinal);
        Assert.Equal(modern, (net.NegotiatedFeatures & VirtioFeatures.Version1) != 0);
        Assert.Equal(row.Packed, (net.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
        Assert.Equal(row.EventIdx, (net.NegotiatedFeatures & VirtioFeatures.EventIdx) != 0);
        Assert.All(net.GetQueueStates(), q => Assert.Equal(row.Packed ? "packed" : "split", q.Layout));

        // Feature words 2 and 3: QEMU 7.2/10.0 offer nothing above 63 (virtio-mmio folds selects 2 and 3 onto 1, which
        // the transport must not take for an offer), so the 128-bit negotiation is the 64-bit one.
        Assert.Equal(0UL, net.OfferedFeatures.High);
        Assert.Equal(0UL, net.NegotiatedFeatures.High);
        Assert.True(net.MacFromDevice);
        Assert.True(net.IsLinkUp);
    }

    // Over thousands of frames interrupt mode took used-buffer interrupts; poll mode never waited on one.
    private static void AssertInterruptsTaken(VirtioNetDevice net, MatrixRow row)
    {
        if (row.Mode == OperationMode.Interrupt)
        {
            Assert.True(net.Pairs[0].ReceiveStatistics.Interrupts > 0, "interrupt mode never took an interrupt over thousands of frames");
        }
        else
        {
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Interrupts);
        }
    }
}
