namespace VirtioNet.Platform;

/// <summary>
/// What a <see cref="INotifyingInterruptLine"/> calls when it is raised: the driver's side of the platform's interrupt
/// dispatcher. Called on the dispatcher's thread (or on the thread that armed the line, when it was already raised), so
/// it must not block: it hands the work over (the net driver queues it to the thread pool) and returns.
/// </summary>
public interface IInterruptCallback
{
    /// <summary>The line armed with this callback was raised.</summary>
    void OnInterrupt();
}
