using VirtioNet.Discovery.Pci;
using VirtioNet.Net;
using VirtioNet.Platform;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.IntegrationTests.Qemu;

/// <summary>
/// Starts either QEMU board (riscv64 virt, x86_64 q35) for a test, and reaches the PCI calls both boards have but
/// <see cref="IQemuBoard"/> does not name, so one test can run on both machines.
/// </summary>
internal static class QemuBoards
{
    /// <summary>Starts the board <paramref name="options"/> name; the caller has checked that its QEMU is there.</summary>
    public static IQemuBoard Start(QemuMachineOptions options)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        return options.Machine == QemuMachineKind.X86Q35 ? X86Q35Board.Start(options, ct) : RiscvVirtBoard.Start(options, ct);
    }

    /// <summary>Starts <paramref name="machine"/> with a virtio-net-pci function of <paramref name="model"/> (skipped, or failed on CI, without QEMU).</summary>
    public static IQemuBoard StartPci(QemuMachineKind machine, QemuNetDeviceModel model, string deviceProperties = "", string? netdev = null)
    {
        QemuRequirement.EnsureAvailable(machine);
        var options = new QemuMachineOptions { Machine = machine, NetDeviceModel = model, NetDeviceProperties = deviceProperties };
        return Start(netdev is null ? options : options with { Netdev = netdev });
    }

    /// <summary>As <see cref="StartPci"/>, riscv64 virt.</summary>
    public static RiscvVirtBoard StartRiscvVirtPci(QemuNetDeviceModel model, string deviceProperties = "", string? netdev = null) =>
        (RiscvVirtBoard)StartPci(QemuMachineKind.RiscvVirt, model, deviceProperties, netdev);

    /// <summary>As <see cref="StartPci"/>, x86_64 q35.</summary>
    public static X86Q35Board StartQ35Pci(QemuNetDeviceModel model, string deviceProperties = "", string? netdev = null) =>
        (X86Q35Board)StartPci(QemuMachineKind.X86Q35, model, deviceProperties, netdev);

    /// <summary>The board's first virtio network function.</summary>
    public static PciFunction FindPciNetFunction(this IQemuBoard board) => board switch
    {
        RiscvVirtBoard virt => virt.FindPciNetFunction(),
        X86Q35Board q35 => q35.FindPciNetFunction(),
        _ => throw new ArgumentException($"Test bug: no PCI on {board}.", nameof(board)),
    };

    /// <summary>Brings up the board's net function: its legacy interface when <paramref name="legacy"/>, else the modern one.</summary>
    public static VirtioNetDevice OpenPciNetDevice(this IQemuBoard board, VirtioNetOptions options, bool legacy, VirtioPciInterruptMode interrupts) => board switch
    {
        RiscvVirtBoard virt => virt.OpenPciNetDevice(options, legacy, interrupts),
        X86Q35Board q35 => q35.OpenPciNetDevice(options, legacy, interrupts),
        _ => throw new ArgumentException($"Test bug: no PCI on {board}.", nameof(board)),
    };

    /// <summary>The interrupt-controller input the board routes <paramref name="function"/>'s INTx pin to: a PLIC source, or an IOAPIC GSI.</summary>
    public static int RoutePciIntx(this IQemuBoard board, PciFunction function) => board switch
    {
        RiscvVirtBoard virt => (int)virt.RoutePciIntx(function).Line,
        X86Q35Board q35 => q35.RoutePciIntx(function),
        _ => throw new ArgumentException($"Test bug: no PCI on {board}.", nameof(board)),
    };

    /// <summary>Input <paramref name="line"/> of the board's interrupt controller (PLIC, IOAPIC), intercepted over qtest.</summary>
    public static IInterruptLine OpenInterruptControllerLine(this IQemuBoard board, int line) =>
        board.Machine.Options.Machine == QemuMachineKind.X86Q35 ? board.Machine.OpenIoapicLine(line) : board.Machine.OpenPlicLine(line);
}
