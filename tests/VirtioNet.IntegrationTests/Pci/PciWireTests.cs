using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary>
/// The wire-test pattern over virtio-pci on both boards: the test plays the wire (UDP socket netdev) and checks
/// thousands of frames byte for byte both ways, in the configurations the transport matrix
/// (<see cref="Matrix.TransportMatrixTests"/>) does not run: jumbo frames (host_mtu=9000, mrg_rxbuf off), INTx with
/// event_idx off, shared MSI-X.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class PciWireTests
{
    [Theory]
    [InlineData(QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.None, OperationMode.Poll, "mrg_rxbuf=off,host_mtu=9000")]
    [InlineData(QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "event_idx=off")]
    [InlineData(QemuMachineKind.RiscvVirt, QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "")]
    [InlineData(QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.None, OperationMode.Poll, "packed=on,mrg_rxbuf=off,host_mtu=9000")]
    [InlineData(QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "event_idx=off")]
    [InlineData(QemuMachineKind.X86Q35, QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "")]
    public void ThousandsOfFramesCrossTheWireIntactOverPci(QemuMachineKind machine, QemuNetDeviceModel model, bool legacy, VirtioPciInterruptMode interrupts, OperationMode mode, string deviceProperties)
    {
        using var wire = new UdpWire();
        using IQemuBoard board = QemuBoards.StartPci(machine, model, deviceProperties, wire.Netdev);
        using VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { OperationMode = mode }, legacy, interrupts);
        Assert.Contains(legacy ? "virtio-pci legacy @ 00:01.0" : "virtio-pci modern @ 00:01.0", net.TransportDescription, StringComparison.Ordinal);
        Assert.Equal(deviceProperties.Contains("host_mtu=9000", StringComparison.Ordinal) ? 9000 : EthernetFrame.DefaultMtu, net.Mtu);

        WireFrames.ExchangeOneAtATime(net, wire, 2000);
    }
}
