using VirtioNet.Net;
using VirtioNet.Qemu;

namespace VirtioNet.Cli;

/// <summary>The common options, parsed and checked.</summary>
internal sealed record MachineSettings
{
    public required bool ModernMmio { get; init; }

    public required string DeviceOptions { get; init; }

    public required OperationMode Mode { get; init; }

    public required bool Json { get; init; }

    /// <summary>--qemu, or null for the machine's own binary.</summary>
    public required string? QemuPath { get; init; }

    // --machine.
    public QemuMachineKind Machine { get; init; } = QemuMachineKind.RiscvVirt;

    public string MachineName => Machine == QemuMachineKind.X86Q35 ? "x86_64-q35" : "riscv64-virt";

    public required int NetSlot { get; init; }

    public ulong? BaseAddress { get; init; }

    /// <summary>The -netdev argument; QEMU's user network unless a command supplies its own peer.</summary>
    public string Netdev { get; init; } = "user,id=n0";

    // The --transport value as given (mmio, mmio-legacy, pci, pci-legacy) and --pci-interrupts.
    public string Transport { get; init; } = "mmio";

    public string PciInterrupts { get; init; } = "intx";

    public bool IsPci => Transport.StartsWith("pci", StringComparison.Ordinal);

    public string TransportName => IsPci ? Transport : ModernMmio ? "mmio" : "mmio-legacy";
}
