using VirtioNet.Platform;

namespace VirtioNet.Transports;

/// <summary>
/// A transport that can give queues interrupts of their own (MSI-X with one vector per queue). The driver may keep
/// waiting on <see cref="IVirtioTransport.Interrupt"/>, which then stands for all of them.
/// </summary>
public interface IQueueInterrupts
{
    /// <summary>The line queue <paramref name="queueIndex"/> signals on, or null when it has none of its own.</summary>
    IInterruptLine? GetQueueInterrupt(int queueIndex);

    /// <summary>The line configuration changes are signalled on, or null when it is shared or absent.</summary>
    IInterruptLine? ConfigurationInterrupt { get; }
}
