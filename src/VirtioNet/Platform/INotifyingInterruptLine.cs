namespace VirtioNet.Platform;

/// <summary>
/// An interrupt line that calls back when raised, so that waiting for it takes no thread of the driver's: the platform
/// runs one dispatcher per process for all its lines (an epoll loop over vhost-user call eventfds, the qtest reader
/// thread's <c>IRQ raise</c> lines) and calls the armed <see cref="IInterruptCallback"/>.
/// </summary>
/// <remarks>
/// Arming is one-shot: after a call the line stays quiet until armed again, and arming again before the call replaces
/// the callback. A line that is already raised when armed calls back at once, so a raise between the driver's last look
/// and its request is never lost. The callback may run on any thread and must not block.
/// </remarks>
public interface INotifyingInterruptLine : IInterruptLine
{
    /// <summary>Asks for one call of <paramref name="callback"/> the next time the line is raised (now, if it is).</summary>
    void RequestCallback(IInterruptCallback callback);
}
