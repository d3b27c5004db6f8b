using System.Net;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Q35;

/// <summary>DHCP and ping of the gateway through virtio-pci (modern and legacy) on x86_64 q35, with INTx via the IOAPIC, MSI-X and polling.</summary>
[Trait("Peer", "Qemu")]
public sealed class Q35PingTests
{
    public static TheoryData<QemuNetDeviceModel, bool, VirtioPciInterruptMode, OperationMode, string> Configurations => new()
    {
        { QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "" },
        { QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "" },
        { QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.MsixPerQueue, OperationMode.Interrupt, "event_idx=off" },
        { QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.None, OperationMode.Poll, "" },
        { QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "packed=on" },
        { QemuNetDeviceModel.VirtioPciModern, false, VirtioPciInterruptMode.None, OperationMode.Poll, "packed=on,event_idx=off" },
        { QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "" },
        { QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.MsixShared, OperationMode.Interrupt, "event_idx=off" },
        { QemuNetDeviceModel.VirtioPciLegacy, true, VirtioPciInterruptMode.None, OperationMode.Poll, "" },
        { QemuNetDeviceModel.VirtioPciTransitional, true, VirtioPciInterruptMode.Intx, OperationMode.Interrupt, "mrg_rxbuf=off" },
        { QemuNetDeviceModel.VirtioPciTransitional, false, VirtioPciInterruptMode.MsixPerQueue, OperationMode.Interrupt, "" },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void DhcpAndPingOfTheGatewaySucceedOverPciOnQ35(QemuNetDeviceModel model, bool legacy, VirtioPciInterruptMode interrupts, OperationMode mode, string deviceProperties)
    {
        using X86Q35Board board = Q35Qemu.StartBoard(model, deviceProperties);
        using VirtioNetDevice net = board.OpenPciNetDevice(new VirtioNetOptions { Mode = mode }, legacy, interrupts);

        Assert.Contains(legacy ? "virtio-pci legacy @ 00:01.0" : "virtio-pci modern @ 00:01.0", net.TransportDescription, StringComparison.Ordinal);
        Assert.Equal(!legacy, (net.NegotiatedFeatures & VirtioFeatures.Version1) != 0);
        Assert.Equal(deviceProperties.Contains("event_idx=off", StringComparison.Ordinal), (net.NegotiatedFeatures & VirtioFeatures.EventIdx) == 0);
        bool packed = !legacy && deviceProperties.Contains("packed=on", StringComparison.Ordinal);
        Assert.Equal(packed, (net.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
        Assert.True(net.MacFromDevice);
        Assert.True(net.IsLinkUp);

        var (lease, replies) = QemuNet.DhcpAndPing(net, 5);

        Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
        Assert.Equal(5, replies.Count);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(0, net.ReceiveStatistics.Errors);
        Assert.True(net.ReceiveStatistics.Packets >= 7);
        if (mode == OperationMode.Poll)
        {
            Assert.Equal(0, net.ReceiveStatistics.Interrupts);
        }
    }
}
