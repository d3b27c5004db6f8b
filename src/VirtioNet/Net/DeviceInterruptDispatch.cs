using VirtioNet.Platform;

namespace VirtioNet.Net;

/// <summary>
/// A device's way from the platform's interrupt dispatcher to its asynchronous waiters: the callback a
/// <see cref="INotifyingInterruptLine"/> is armed with, and the thread-pool work item that then reads and acknowledges
/// the device's interrupt and completes the waits whose queues moved. Where the line cannot call back (an MSI-X vector
/// that is a memory cell, a group of them) or in poll mode, a one-shot timer stands in for the callback: it looks every
/// millisecond while anyone waits. Made once per device, so arming and dispatching allocate nothing.
/// </summary>
internal sealed class DeviceInterruptDispatch : IInterruptCallback, IThreadPoolWorkItem, IDisposable
{
    // How often the timer looks where no line calls back.
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(1);

    private readonly VirtioNetDevice _device;

    // The stand-in for lines that cannot call back, created on first use.
    private Timer? _timer;

    // 1 while the work item is queued and has not started: one queued dispatch is enough for any number of callbacks.
    private int _queued;

    // Dispatches run (for tests).
    private long _dispatches;

    internal DeviceInterruptDispatch(VirtioNetDevice device) => _device = device;

    /// <summary>Dispatches run on the thread pool (for tests).</summary>
    internal long Dispatches => Interlocked.Read(ref _dispatches);

    /// <summary>The platform's dispatcher saw the line raised: queue the work and return at once (its thread serves every device).</summary>
    public void OnInterrupt()
    {
        if (Interlocked.Exchange(ref _queued, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    /// <summary>Arms the line, or the timer where the line cannot call back.</summary>
    internal void Arm(IInterruptLine? line)
    {
        if (line is INotifyingInterruptLine notifying)
        {
            notifying.RequestCallback(this);
            return;
        }

        Timer? timer = Volatile.Read(ref _timer);
        if (timer is null)
        {
            // Setup, once: a timer of the runtime's shared timer thread, not a thread of this device's.
            timer = new Timer(static state => ((DeviceInterruptDispatch)state!).OnInterrupt(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            Timer? raced = Interlocked.CompareExchange(ref _timer, timer, null);
            if (raced is not null)
            {
                timer.Dispose();
                timer = raced;
            }
        }

        timer.Change(PollInterval, Timeout.InfiniteTimeSpan);
    }

    /// <inheritdoc />
    void IThreadPoolWorkItem.Execute()
    {
        // Cleared first: a callback from here on queues another dispatch, which then sees what this one missed.
        Volatile.Write(ref _queued, 0);
        Interlocked.Increment(ref _dispatches);
        _device.DispatchAsyncWaits();
    }

    /// <inheritdoc />
    public void Dispose() => Volatile.Read(ref _timer)?.Dispose();
}
