using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;

namespace VirtioNet.Cli;

/// <summary>Starts the QEMU machine the common options describe.</summary>
internal static class Boards
{
    public static IQemuBoard Start(MachineSettings settings, CancellationToken cancellationToken)
    {
        QemuMachineOptions options = CreateOptions(settings);
        string what = settings.Machine == QemuMachineKind.X86Q35 ? "x86_64 q35" : "riscv64 virt";
        Log.Info($"starting QEMU {what} ({settings.TransportName}{(settings.DeviceOptions.Length > 0 ? ", " + settings.DeviceOptions : "")})");
        IQemuBoard board = settings.Machine == QemuMachineKind.X86Q35
            ? X86Q35Board.Start(options, cancellationToken)
            : RiscvVirtBoard.Start(options, cancellationToken);
        return Ready(board, settings);
    }

    /// <summary>Drives a machine started earlier by <c>vnet machine start</c>; its net device is reset before use.</summary>
    public static IQemuBoard Attach(MachineSettings settings, DetachedQemuMachine detached, CancellationToken cancellationToken)
    {
        QemuMachineOptions options = CreateOptions(settings);
        Log.Info($"attaching to QEMU pid {detached.ProcessId} ({settings.MachineName}, {settings.TransportName})");
        IQemuBoard board = settings.Machine == QemuMachineKind.X86Q35
            ? X86Q35Board.Attach(options, detached, cancellationToken)
            : RiscvVirtBoard.Attach(options, detached, cancellationToken);
        return Ready(board, settings);
    }

    public static QemuMachineOptions CreateOptions(MachineSettings settings)
    {
        QemuMachineOptions options;
        try
        {
            options = new QemuMachineOptions
            {
                Machine = settings.Machine,
                Netdev = settings.Netdev,
                NetDeviceProperties = settings.DeviceOptions,

                // pci is a modern-only function, pci-legacy a legacy-only one; the board drives what the function offers.
                NetDeviceModel = settings.Transport switch
                {
                    "pci" => QemuNetDeviceModel.VirtioPciModern,
                    "pci-legacy" => QemuNetDeviceModel.VirtioPciLegacy,
                    _ => QemuNetDeviceModel.VirtioMmio,
                },
            };
            if (settings.QemuPath is not null)
            {
                options = options with { QemuPath = settings.QemuPath };
            }

            // virtio-mmio slots exist on riscv64 virt only.
            if (settings.Machine == QemuMachineKind.RiscvVirt)
            {
                options = options with { ModernMmio = settings.ModernMmio, DevicesBeforeNet = 7 - settings.NetSlot };
            }
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--device-opts or --qemu: {e.Message}", e);
        }

        return options;
    }

    private static IQemuBoard Ready(IQemuBoard board, MachineSettings settings)
    {
        board.PciInterruptMode = settings.PciInterrupts switch
        {
            "msix" => VirtioPciInterruptMode.MsixShared,
            "msix-per-queue" => VirtioPciInterruptMode.MsixPerQueue,
            _ => VirtioPciInterruptMode.Intx,
        };
        Log.Info(board is RiscvVirtBoard riscv
            ? $"QEMU running (pid {board.Machine.ProcessId}); device tree lists {riscv.Slots.Count} virtio-mmio slots"
            : $"QEMU running (pid {board.Machine.ProcessId}); q35 chipset up, ECAM at 0x{Q35Chipset.EcamBase:x}");
        return board;
    }
}
