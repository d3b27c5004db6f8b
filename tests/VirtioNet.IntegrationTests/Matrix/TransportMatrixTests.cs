using System.Diagnostics;
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
/// per-queue MSI-X with it off, so both kinds run on every PCI transport.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class TransportMatrixTests
{
    private const int Frames = 2000;

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

    private static IQemuBoard Start(string machine, string transport, bool packed, bool eventIdx, string netdev)
    {
        QemuMachineKind kind = machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt;
        QemuRequirement.EnsureAvailable(kind);
        var options = new QemuMachineOptions
        {
            Machine = kind,
            ModernMmio = transport == "mmio",
            NetDeviceModel = transport switch
            {
                "pci" => QemuNetDeviceModel.VirtioPciModern,
                "pci-legacy" => QemuNetDeviceModel.VirtioPciLegacy,
                _ => QemuNetDeviceModel.VirtioMmio,
            },
            Netdev = netdev,
            NetDeviceProperties = $"packed={(packed ? "on" : "off")},event_idx={(eventIdx ? "on" : "off")}",
        };
        CancellationToken ct = TestContext.Current.CancellationToken;
        return kind == QemuMachineKind.X86Q35 ? X86Q35Board.Start(options, ct) : RiscvVirtBoard.Start(options, ct);
    }

    private static VirtioNetDevice Open(IQemuBoard board, string transport, OperationMode mode, bool eventIdx)
    {
        board.PciInterruptMode = mode == OperationMode.Poll ? VirtioPciInterruptMode.None
            : eventIdx ? VirtioPciInterruptMode.Intx : VirtioPciInterruptMode.MsixPerQueue;
        return board.OpenNetDevice(null, new VirtioNetOptions { Mode = mode });
    }

    private static void AssertNegotiation(VirtioNetDevice net, string transport, bool packed, bool eventIdx)
    {
        bool modern = transport is "mmio" or "pci";
        Assert.Equal(modern, (net.NegotiatedFeatures & VirtioFeatures.Version1) != 0);
        Assert.Equal(packed, (net.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
        Assert.Equal(eventIdx, (net.NegotiatedFeatures & VirtioFeatures.EventIdx) != 0);
        Assert.All(net.GetQueueStates(), q => Assert.Equal(packed ? "packed" : "split", q.Layout));
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void PingAndThousandsOfVerifiedFramesWork(string machine, string transport, bool packed, OperationMode mode, bool eventIdx)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;

        // DHCP and ping through QEMU's user network.
        using (IQemuBoard board = Start(machine, transport, packed, eventIdx, "user,id=n0"))
        using (VirtioNetDevice net = Open(board, transport, mode, eventIdx))
        {
            AssertNegotiation(net, transport, packed, eventIdx);
            var (lease, replies) = QemuNet.DhcpAndPing(net, 3);
            Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
            Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        }

        // The sustained exchange, with the test as the other end of the cable.
        using var wire = new UdpWire();
        using (IQemuBoard board = Start(machine, transport, packed, eventIdx, wire.Netdev))
        using (VirtioNetDevice net = Open(board, transport, mode, eventIdx))
        {
            AssertNegotiation(net, transport, packed, eventIdx);
            byte[] received = new byte[net.MaxReceiveFrameLength];
            for (int i = 0; i < Frames; i++)
            {
                int size = 60 + ((i * 997) % 1455);
                byte[] outgoing = Frame(size, i);
                var clock = Stopwatch.StartNew();
                while (!net.TrySend(outgoing))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"frame {i}: the transmit ring stayed full");
                    Thread.Yield();
                }

                Assert.Equal(outgoing, wire.Receive(TimeSpan.FromSeconds(5)));

                byte[] incoming = Frame(size, -i - 1);
                wire.Inject(incoming);
                Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {i} ({size} bytes) did not arrive");
                Assert.True(net.TryReceive(received, out int length));
                Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
            }

            Assert.Equal(Frames, net.ReceiveStatistics.Packets);
            Assert.Equal(0, net.ReceiveStatistics.Errors);
            Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
            if (mode == OperationMode.Interrupt)
            {
                Assert.True(net.ReceiveStatistics.Interrupts > 0, "interrupt mode never took an interrupt over thousands of frames");
            }
        }
    }

    private static byte[] Frame(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        frame.AsSpan(0, 6).Fill(0xff);
        frame[6] = 0x02;
        frame[12] = 0x88;
        frame[13] = 0xb5;
        return frame;
    }
}
