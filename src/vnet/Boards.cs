using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;

namespace VirtioNet.Cli;

/// <summary>Starts the QEMU machine the common options describe.</summary>
internal static class Boards
{
    public static RiscvVirtBoard Start(MachineSettings settings, CancellationToken cancellationToken)
    {
        QemuMachineOptions options;
        try
        {
            options = new QemuMachineOptions
            {
                QemuPath = settings.QemuPath,
                Netdev = settings.Netdev,
                ModernMmio = settings.ModernMmio,
                NetDeviceProperties = settings.DeviceOptions,
                DevicesBeforeNet = 7 - settings.NetSlot,

                // Issue 3 (PCI): pci is a modern-only function, pci-legacy a legacy-only one; the board drives what the function offers.
                NetDeviceModel = settings.Transport switch
                {
                    "pci" => QemuNetDeviceModel.VirtioPciModern,
                    "pci-legacy" => QemuNetDeviceModel.VirtioPciLegacy,
                    _ => QemuNetDeviceModel.VirtioMmio,
                },
            };
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--device-opts or --qemu: {e.Message}", e);
        }

        Log.Info($"starting QEMU riscv64 virt ({settings.TransportName}{(settings.DeviceOptions.Length > 0 ? ", " + settings.DeviceOptions : "")})");
        RiscvVirtBoard board = RiscvVirtBoard.Start(options, cancellationToken);
        board.PciInterruptMode = settings.PciInterrupts switch
        {
            "msix" => VirtioPciInterruptMode.MsixShared,
            "msix-per-queue" => VirtioPciInterruptMode.MsixPerQueue,
            _ => VirtioPciInterruptMode.Intx,
        };
        Log.Info($"QEMU running (pid {board.Machine.ProcessId}); device tree lists {board.Slots.Count} virtio-mmio slots");
        return board;
    }
}
