using System.Threading.Tasks.Sources;

namespace VirtioNet.Net;

/// <summary>
/// One queue's asynchronous wait ("frames to take" on a receive queue, "room to send" on a transmit queue), made once
/// per queue and reused for every wait, so that waiting allocates nothing: the <see cref="ValueTask"/> it hands out is
/// backed by this object and a version number (<see cref="ManualResetValueTaskSourceCore{TResult}"/>).
/// </summary>
/// <remarks>
/// <para>
/// States: idle, waiting, completed. The queue's worker starts a wait (idle → waiting); the device's interrupt dispatch,
/// a cancellation, recovery or disposal completes it (waiting → completed, by one compare-exchange, so exactly one of
/// them does); awaiting it collects the result, lets the device switch the queue's notifications off again on the
/// worker's side of the queue, and makes it idle. Continuations never run on the completing thread
/// (RunContinuationsAsynchronously): the dispatcher hands an async method's continuation to the thread pool (which
/// queues the method's own state-machine box, no allocation) or posts it to the awaiter's synchronization context.
/// </para>
/// <para>
/// A completed wait means "look now", not "there is certainly a frame": a wake-up may be for a frame a previous
/// <c>TryReceive</c> already took. Callers loop, as after any wait.
/// </para>
/// </remarks>
internal sealed class QueueWaiter(IQueueWaiterOwner device, int pair, bool transmit) : IValueTaskSource
{
    private const int Idle = 0;
    private const int Waiting = 1;
    private const int Completed = 2;

    // Cancellation callback, static so that registering allocates no delegate.
    private static readonly Action<object?, CancellationToken> CancelCallback = static (state, token) =>
    {
        var waiter = (QueueWaiter)state!;
        waiter._device.CompleteWaiter(waiter, byNotification: false, new OperationCanceledException(token));
    };

    // The device that completes the wait and switches notifications off afterwards.
    private readonly IQueueWaiterOwner _device = device;

    // The result and the continuation: reset after each wait (the version changes, so a stale ValueTask is refused).
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

    // Idle, Waiting or Completed; changed by compare-exchange between the worker and the completing thread.
    private int _state;

    // The caller's token's registration for this wait (default when the token cannot be cancelled).
    private CancellationTokenRegistration _registration;

    // True when the device's interrupt dispatch completed the wait (counted in the queue's statistics).
    private bool _byNotification;

    /// <summary>The queue pair whose queue this waits for.</summary>
    internal int Pair { get; } = pair;

    /// <summary>True for the transmit queue's "room to send", false for the receive queue's "frames to take".</summary>
    internal bool Transmit { get; } = transmit;

    /// <summary>True while a wait is pending (read by the dispatcher before it looks at the queue).</summary>
    internal bool IsWaiting => Volatile.Read(ref _state) == Waiting;

    /// <summary>Starts a wait (the queue's worker only). The caller then arms notifications and calls <see cref="Watch"/>.</summary>
    /// <exception cref="InvalidOperationException">A wait on this queue is still pending or not yet awaited.</exception>
    internal ValueTask Begin()
    {
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) != Idle)
        {
            throw new InvalidOperationException($"A wait on {(Transmit ? "transmitq" : "receiveq")}{Pair + 1} is already pending: each queue has one waiter at a time, and a wait must be awaited before the next.");
        }

        return new ValueTask(this, _core.Version);
    }

    /// <summary>Registers the caller's token, once the wait is armed (a token already cancelled completes it at once).</summary>
    internal void Watch(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(CancelCallback, this);
        }
    }

    /// <summary>Completes a pending wait (any thread). Returns false when it was not pending (someone else completed it).</summary>
    internal bool TryComplete(bool byNotification, Exception? error)
    {
        if (Interlocked.CompareExchange(ref _state, Completed, Waiting) != Waiting)
        {
            return false;
        }

        _byNotification = byNotification;
        if (error is null)
        {
            _core.SetResult(true);
        }
        else
        {
            _core.SetException(error);
        }

        return true;
    }

    /// <inheritdoc />
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    /// <inheritdoc />
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <inheritdoc />
    public void GetResult(short token)
    {
        // Throws for a stale token before anything changes; the cancellation's (or disposal's) exception leaves below.
        ValueTaskSourceStatus status = _core.GetStatus(token);
        if (status == ValueTaskSourceStatus.Pending)
        {
            // Not completed yet: the core refuses (a ValueTask must be awaited, not read early); nothing changes.
            _core.GetResult(token);
        }

        bool byNotification = _byNotification;
        try
        {
            if (status != ValueTaskSourceStatus.Succeeded)
            {
                _core.GetResult(token);
            }
        }
        finally
        {
            // Waits for a cancellation callback still running on another thread, so it cannot touch the next wait.
            _registration.Dispose();
            _registration = default;
            _core.Reset();
            _device.FinishWait(this, byNotification);
            Volatile.Write(ref _state, Idle);
        }
    }
}
