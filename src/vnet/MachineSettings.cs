using VirtioNet.Net;

namespace VirtioNet.Cli;

/// <summary>The common options, parsed and checked.</summary>
internal sealed record MachineSettings
{
    public required bool ModernMmio { get; init; }

    public required string DeviceOptions { get; init; }

    public required OperationMode Mode { get; init; }

    public required bool Json { get; init; }

    public required string QemuPath { get; init; }

    public required int NetSlot { get; init; }

    public ulong? BaseAddress { get; init; }

    /// <summary>The -netdev argument; QEMU's user network unless a command supplies its own peer.</summary>
    public string Netdev { get; init; } = "user,id=n0";

    // Issue 3 (PCI): the --transport value as given (mmio, mmio-legacy, pci, pci-legacy) and --pci-interrupts.
    public string Transport { get; init; } = "mmio";

    public string PciInterrupts { get; init; } = "intx";

    public bool IsPci => Transport.StartsWith("pci", StringComparison.Ordinal);

    public string TransportName => IsPci ? Transport : ModernMmio ? "mmio" : "mmio-legacy";
}
