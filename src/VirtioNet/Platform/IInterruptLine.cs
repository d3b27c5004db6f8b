namespace VirtioNet.Platform;

/// <summary>
/// One interrupt input of the driver: a PLIC line, a PCI INTx line, an MSI-X vector or a vhost-user call eventfd.
/// </summary>
/// <remarks>
/// Lines are level-triggered as the virtio transports define them: the line stays raised until the driver
/// acknowledges the cause at the device (InterruptACK on mmio, the ISR read on PCI).
/// </remarks>
public interface IInterruptLine
{
    /// <summary>The line's number as the platform names it (PLIC source, vector index).</summary>
    int Number { get; }

    /// <summary>True while the line is raised.</summary>
    bool IsRaised { get; }

    /// <summary>Number of raise events seen since the line was opened.</summary>
    long RaiseCount { get; }

    /// <summary>
    /// Waits until the line is raised (returns at once if it already is).
    /// Returns false when <paramref name="timeout"/> passes first.
    /// </summary>
    bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default);
}
