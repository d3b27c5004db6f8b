using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary>Starts a riscv64 virt machine whose net device is a virtio-net-pci function.</summary>
internal static class PciQemu
{
    public static RiscvVirtBoard StartBoard(QemuNetDeviceModel model, string deviceProperties = "", string? netdev = null)
    {
        QemuRequirement.EnsureAvailable();
        var options = new QemuMachineOptions { NetDeviceModel = model, NetDeviceProperties = deviceProperties };
        if (netdev is not null)
        {
            options = options with { Netdev = netdev };
        }

        return RiscvVirtBoard.Start(options, TestContext.Current.CancellationToken);
    }
}
