using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Q35;

/// <summary>Starts an x86_64 q35 machine whose net device is a virtio-net-pci function.</summary>
internal static class Q35Qemu
{
    public static X86Q35Board StartBoard(QemuNetDeviceModel model, string deviceProperties = "", string? netdev = null)
    {
        QemuRequirement.EnsureAvailable(QemuMachineKind.X86Q35);
        var options = new QemuMachineOptions { Machine = QemuMachineKind.X86Q35, NetDeviceModel = model, NetDeviceProperties = deviceProperties };
        if (netdev is not null)
        {
            options = options with { Netdev = netdev };
        }

        return X86Q35Board.Start(options, TestContext.Current.CancellationToken);
    }
}
