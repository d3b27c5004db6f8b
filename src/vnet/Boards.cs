using VirtioNet.Qemu;

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
            };
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--device-opts or --qemu: {e.Message}", e);
        }

        Log.Info($"starting QEMU riscv64 virt ({settings.TransportName}{(settings.DeviceOptions.Length > 0 ? ", " + settings.DeviceOptions : "")})");
        RiscvVirtBoard board = RiscvVirtBoard.Start(options, cancellationToken);
        Log.Info($"QEMU running (pid {board.Machine.ProcessId}); device tree lists {board.Slots.Count} virtio-mmio slots");
        return board;
    }
}
