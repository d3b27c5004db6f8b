using System.CommandLine;
using System.Globalization;
using VirtioNet.Net;
using VirtioNet.Qemu;

namespace VirtioNet.Cli;

/// <summary>The options every command takes, declared once and added to each command.</summary>
internal static class CommonOptions
{
    public static readonly Option<string> Transport = new("--transport")
    {
        Description = "How the net device is attached and driven: mmio (virtio-mmio version 2), mmio-legacy (version 1, QEMU's default), " +
            "pci (virtio-net-pci, modern interface, disable-legacy=on) or pci-legacy (virtio-net-pci, legacy I/O BAR, disable-modern=on).",
        DefaultValueFactory = _ => "mmio",
    };

    // Which QEMU machine the device sits on.
    public static readonly Option<string> Machine = new("--machine")
    {
        Description = "The QEMU machine: riscv64-virt (device tree, virtio-mmio slots, PCIe, PLIC) or x86_64-q35 " +
            "(chipset ECAM, IOAPIC; --transport pci or pci-legacy only).",
        DefaultValueFactory = _ => "riscv64-virt",
    };

    public static readonly Option<string> DeviceOpts = new("--device-opts")
    {
        Description = "Extra QEMU -device properties for the net device, e.g. mrg_rxbuf=off,event_idx=off.",
        DefaultValueFactory = _ => string.Empty,
    };

    // How a PCI net device interrupts in interrupt mode.
    public static readonly Option<string> PciInterrupts = new("--pci-interrupts")
    {
        Description = "With --transport pci or pci-legacy in interrupt mode: intx (PLIC line from the interrupt-map), msix (one shared vector) " +
            "or msix-per-queue (a configuration vector and one per queue); MSI-X messages land in guest RAM cells (docs/PCI.md).",
        DefaultValueFactory = _ => "intx",
    };

    public static readonly Option<string> Mode = new("--mode")
    {
        Description = "How the driver learns of used buffers: interrupt (PLIC line over qtest), poll, or adaptive (poll for a self-tuning budget, then sleep as interrupt does).",
        DefaultValueFactory = _ => "interrupt",
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Write machine-readable JSON to stdout instead of text.",
    };

    public static readonly Option<string?> Qemu = new("--qemu")
    {
        Description = "The QEMU binary to run (default: the machine's, qemu-system-riscv64 or qemu-system-x86_64).",
    };

    public static readonly Option<int> Slot = new("--slot")
    {
        Description = "The virtio-mmio slot (0-7, 0 at 0x10001000) QEMU places the net device in; lower slots get virtio-rng devices in front.",
        DefaultValueFactory = _ => 7,
    };

    public static readonly Option<string?> Base = new("--base")
    {
        Description = "Drive the virtio-mmio device at this base address (hex) instead of the first net device found.",
    };

    /// <summary>--log-level, on every command: the least important messages written to stderr.</summary>
    public static readonly Option<string?> LogLevel = new("--log-level")
    {
        Description = "Diagnostics on stderr from this level up: trace, debug, information (default), warning, error, critical or none. " +
            "Overrides [debug] log_level of a configuration file.",
        Recursive = true,
    };

    /// <summary>An operation mode by the name --mode and the configuration file's mode key use.</summary>
    public static OperationMode ParseMode(string? name) => name switch
    {
        "poll" => OperationMode.Poll,
        "adaptive" => OperationMode.Adaptive,
        _ => OperationMode.Interrupt,
    };

    public static void AddTo(Command command, bool includeOperationMode = true)
    {
        Transport.AcceptOnlyFromAmong("mmio", "mmio-legacy", "pci", "pci-legacy");
        Machine.AcceptOnlyFromAmong("riscv64-virt", "x86_64-q35");
        PciInterrupts.AcceptOnlyFromAmong("intx", "msix", "msix-per-queue");
        Mode.AcceptOnlyFromAmong("interrupt", "poll", "adaptive");
        foreach (Option option in new Option[] { Machine, Transport, PciInterrupts, DeviceOpts, Json, Qemu, Slot, Base })
        {
            command.Options.Add(option);
        }

        if (includeOperationMode)
        {
            command.Options.Add(Mode);
        }
    }

    public static MachineSettings Read(ParseResult result)
    {
        int slot = result.GetValue(Slot);
        if (slot is < 0 or > 7)
        {
            throw new CliException($"--slot must be 0 to 7 (riscv64 virt has eight virtio-mmio slots); got {slot}.");
        }

        ulong? baseAddress = null;
        if (result.GetValue(Base) is { Length: > 0 } text)
        {
            string digits = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
            if (!ulong.TryParse(digits, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong value))
            {
                throw new CliException($"--base must be a hexadecimal address such as 0x10008000; got '{text}'.");
            }

            baseAddress = value;
        }

        // q35 has PCI only; its net device is a virtio-net-pci function.
        string machine = result.GetValue(Machine) ?? "riscv64-virt";
        string transport = result.GetValue(Transport) ?? "mmio";
        if (machine == "x86_64-q35")
        {
            if (transport is not ("pci" or "pci-legacy"))
            {
                throw new CliException($"--machine x86_64-q35 has no virtio-mmio slots: use --transport pci or pci-legacy (got {transport}).");
            }

            if (baseAddress is not null)
            {
                throw new CliException("--base names a virtio-mmio slot, which --machine x86_64-q35 does not have.");
            }
        }

        return new MachineSettings
        {
            Machine = machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt,
            ModernMmio = result.GetValue(Transport) == "mmio",
            Transport = result.GetValue(Transport) ?? "mmio",
            PciInterrupts = result.GetValue(PciInterrupts) ?? "intx",
            DeviceOptions = result.GetValue(DeviceOpts) ?? string.Empty,
            Mode = !result.CommandResult.Command.Options.Contains(Mode) ? OperationMode.Interrupt : ParseMode(result.GetValue(Mode)),
            Json = result.GetValue(Json),
            QemuPath = result.GetValue(Qemu) is { Length: > 0 } qemu ? qemu : null,
            NetSlot = slot,
            BaseAddress = baseAddress,
        };
    }
}
