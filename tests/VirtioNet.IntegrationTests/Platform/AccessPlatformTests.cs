using System.Diagnostics;
using System.Net;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Pci;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Platform;

/// <summary>
/// VIRTIO_F_ACCESS_PLATFORM (virtio v1.2 §6.1) against QEMU's <c>iommu_platform=on</c>: QEMU then offers the bit and
/// refuses FEATURES_OK from a driver that does not accept it (the spec lets a device "fail to operate further"). Without
/// a vIOMMU the bus addresses are guest-physical, which is what this platform's DMA allocator hands out, so after
/// accepting it the driver runs unchanged: DHCP, ping and frames compared byte for byte, on every modern transport.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class AccessPlatformTests
{
    private const int Frames = 300;

    [Theory]
    [InlineData("riscv64-virt", "mmio", false)]
    [InlineData("riscv64-virt", "pci", false)]
    [InlineData("riscv64-virt", "pci", true)]
    [InlineData("x86_64-q35", "pci", false)]
    [InlineData("x86_64-q35", "pci", true)]
    public void WithIommuPlatformOnTheDriverAcceptsAccessPlatformAndTrafficFlows(string machine, string transport, bool packed)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using (IQemuBoard board = Start(machine, transport, packed, "user,id=n0"))
        using (VirtioNetDevice net = Open(board, packed))
        {
            Assert.NotEqual(0UL, net.OfferedFeatures & VirtioFeatures.AccessPlatform);
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.AccessPlatform);
            Assert.Equal(packed, (net.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
            var (lease, replies) = QemuNet.DhcpAndPing(net, 2);
            Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
            Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        }

        using var wire = new UdpWire();
        using (IQemuBoard board = Start(machine, transport, packed, wire.Netdev))
        using (VirtioNetDevice net = Open(board, packed))
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.AccessPlatform);
            byte[] received = new byte[net.MaxReceiveFrameLength];
            for (int i = 0; i < Frames; i++)
            {
                int size = 60 + ((i * 997) % 1455);
                byte[] outgoing = WireFrames.Make(size, i);
                var clock = Stopwatch.StartNew();
                while (!net.TrySend(outgoing))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"frame {i}: the transmit ring stayed full");
                    Thread.Yield();
                }

                Assert.Equal(outgoing, wire.Receive(TimeSpan.FromSeconds(5)));
                byte[] incoming = WireFrames.Make(size, -i - 1);
                wire.Inject(incoming);
                Assert.True(net.WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {i} ({size} bytes) did not arrive");
                Assert.True(net.TryReceive(received, out int length));
                Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
            }

            Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        }
    }

    private static IQemuBoard Start(string machine, string transport, bool packed, string netdev)
    {
        QemuMachineKind kind = machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt;
        QemuRequirement.EnsureAvailable(kind);
        var options = new QemuMachineOptions
        {
            Machine = kind,
            ModernMmio = transport == "mmio",
            NetDeviceModel = transport == "pci" ? QemuNetDeviceModel.VirtioPciModern : QemuNetDeviceModel.VirtioMmio,
            Netdev = netdev,
            NetDeviceProperties = $"iommu_platform=on,packed={(packed ? "on" : "off")}",
        };
        CancellationToken ct = TestContext.Current.CancellationToken;
        return kind == QemuMachineKind.X86Q35 ? X86Q35Board.Start(options, ct) : RiscvVirtBoard.Start(options, ct);
    }

    // Interrupt mode throughout: MSI-X per queue on the packed rows, INTx on the split ones (mmio: its PLIC line).
    private static VirtioNetDevice Open(IQemuBoard board, bool packed)
    {
        board.PciInterruptMode = packed ? VirtioPciInterruptMode.MsixPerQueue : VirtioPciInterruptMode.Intx;
        return board.OpenNetDevice(null, new VirtioNetOptions { Mode = OperationMode.Interrupt });
    }
}
