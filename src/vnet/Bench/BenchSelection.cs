using VirtioNet.Net;

namespace VirtioNet.Cli.Bench;

/// <summary>
/// What <c>vnet bench --mode</c> asked for: the direction (tx, rx, loopback; default tx) and how the driver learns of
/// received frames (poll, the default, busy-polling as DPDK does; interrupt, sleeping in
/// <see cref="VirtioNetQueuePair.WaitForReceive"/> until the device interrupts; or adaptive, polling for a budget first).
/// </summary>
/// <param name="Direction">What is measured.</param>
/// <param name="Operation">Poll, interrupt or adaptive.</param>
internal readonly record struct BenchSelection(BenchMode Direction, OperationMode Operation)
{
    private static readonly string[] Directions = ["tx", "rx", "loopback", "latency"];

    private static readonly string[] Operations = ["poll", "interrupt", "adaptive"];

    /// <summary>Every value --mode accepts.</summary>
    public static IReadOnlyList<string> Values { get; } = [.. Directions, .. Operations];

    /// <summary>
    /// Reads the --mode values (each one of <see cref="Values"/>, at most one direction and one operation mode); a bad
    /// combination is one <see cref="CliException"/> sentence.
    /// </summary>
    public static BenchSelection Parse(IReadOnlyList<string> values)
    {
        string[] directions = [.. values.Where(Directions.Contains).Distinct()];
        string[] operations = [.. values.Where(Operations.Contains).Distinct()];
        if (directions.Length > 1)
        {
            throw new CliException($"--mode takes one direction (tx, rx, loopback or latency); got {string.Join(" and ", directions)}.");
        }

        if (operations.Length > 1)
        {
            throw new CliException($"--mode takes one of poll, interrupt or adaptive; got {string.Join(" and ", operations)}.");
        }

        BenchMode direction = directions.Length == 0 ? BenchMode.Tx : Enum.Parse<BenchMode>(directions[0], ignoreCase: true);
        OperationMode operation = operations switch
        {
            ["interrupt"] => OperationMode.Interrupt,
            ["adaptive"] => OperationMode.Adaptive,
            _ => OperationMode.Poll,
        };
        if (operation != OperationMode.Poll && direction == BenchMode.Tx)
        {
            // The driver's interrupt operation is the receive side's (WaitForReceive); transmit completions are reclaimed
            // when buffers are allocated, and nothing in tx mode would ever wait for an interrupt.
            throw new CliException($"--mode {operations[0]} waits for received frames, and tx receives none: add --mode rx or --mode loopback.");
        }

        return new BenchSelection(direction, operation);
    }

    /// <summary>
    /// Why an explicit <c>--pci-interrupts</c> cannot take effect in this run, or null when it can: it chooses how a QEMU
    /// PCI function interrupts, so it needs interrupt mode, a QEMU machine and a PCI transport. Silently ignoring it would
    /// report a poll-mode or mmio run as the interrupt layout asked for.
    /// </summary>
    public string? RefusePciInterrupts(bool vhostUser, string transport) =>
        Operation == OperationMode.Poll ? "--pci-interrupts applies in interrupt mode, and bench polls unless told: add --mode interrupt."
        : vhostUser ? "--pci-interrupts is for a QEMU PCI device; a vhost-user backend interrupts through its call eventfds."
        : !transport.StartsWith("pci", StringComparison.Ordinal) ? $"--pci-interrupts needs --transport pci or pci-legacy; got {transport}."
        : null;
}
