using System.Net;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary>
/// DHCP and ping of the gateway through virtio-pci on both boards (riscv64 virt: INTx through the PLIC; x86_64 q35:
/// INTx through the IOAPIC; MSI-X in guest RAM on both), in the configurations the transport matrix
/// (<see cref="Matrix.TransportMatrixTests"/>) does not run: shared MSI-X, per-queue MSI-X with event_idx on, INTx with
/// it off, mrg_rxbuf off, and the transitional function driven through either interface.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class PciPingTests
{
    public static TheoryData<QemuMachineKind, QemuNetDeviceModel, bool, VirtioPciInterruptMode, OperationMode, string> Configurations => new()
    {
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixPerQueue, OperationMode.Interrupt, "" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "event_idx=off" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.None, OperationMode.Poll, "event_idx=off,mrg_rxbuf=off" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "packed=on" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciTransitional, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "mrg_rxbuf=off" },
        { QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciTransitional, false, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "" },
        { QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "" },
        { QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "event_idx=off" },
        { QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciTransitional, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "mrg_rxbuf=off" },
        { QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciTransitional, false, VirtioPciInterruptMode.MsixPerQueue, OperationMode.Interrupt, "" },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public async Task DhcpAndPingOfTheGatewaySucceedOverPci(QemuMachineKind machine, QemuNetDeviceModel model, bool legacy, VirtioPciInterruptMode interrupts, OperationMode mode, string deviceProperties)
    {
        using IQemuBoard board = QemuBoards.StartPci(machine, model, deviceProperties);
        using VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { OperationMode = mode }, legacy, interrupts);

        Assert.Contains(legacy ? "virtio-pci legacy @ 00:01.0" : "virtio-pci modern @ 00:01.0", net.TransportDescription, StringComparison.Ordinal);
        Assert.Equal(!legacy, (net.NegotiatedFeatures & VirtioFeatures.Version1) != 0);
        Assert.Equal(deviceProperties.Contains("event_idx=off", StringComparison.Ordinal), (net.NegotiatedFeatures & VirtioFeatures.EventIdx) == 0);
        bool packed = !legacy && deviceProperties.Contains("packed=on", StringComparison.Ordinal);
        Assert.Equal(packed, (net.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
        Assert.True(net.MacFromDevice);
        Assert.True(net.IsLinkUp);

        var (lease, replies) = await QemuNet.DhcpAndPingAsync(net, 5);

        Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
        Assert.Equal(5, replies.Count);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.True(net.Pairs[0].ReceiveStatistics.Packets >= 7);
        if (mode == OperationMode.Poll)
        {
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Interrupts);
        }
    }
}
