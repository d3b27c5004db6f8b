using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// The asynchronous waits: "frames to take" on a receive queue and "room to send" on a transmit queue, each a
/// <see cref="ValueTask"/> backed by the queue's one <see cref="QueueWaiter"/>, and completed without a thread of the
/// device's own.
/// </summary>
/// <remarks>
/// <para>
/// Who completes a wait. A worker starting a wait registers it (the waiter goes to "waiting"), asks the device for a
/// used-buffer notification on its queue and re-checks the ring (§2.7.10; a transmit queue asks with the delayed event
/// index, <see cref="IVirtqueue.EnableInterruptsDelayed"/>), then makes sure someone watches the interrupt line: if no
/// synchronous waiter holds it, it arms the line (<see cref="INotifyingInterruptLine.RequestCallback"/>; a one-shot
/// timer where the line cannot call back, and in poll mode). The platform's one dispatcher per process (the epoll loop
/// over vhost-user call eventfds, the qtest reader thread) calls back; the callback queues this device's dispatch to the
/// thread pool, which takes the line as a holder would, acknowledges the interrupt (configuration changes included),
/// wakes synchronous waiters, completes every waiting waiter whose queue moved, releases the line, and arms it again
/// while anyone still waits. A synchronous waiter holding the line completes asynchronous waiters in the same scan, and
/// arms the line for them when it leaves.
/// </para>
/// <para>
/// The same rules as the synchronous baton keep wake-ups from being lost: registration before the request, the request
/// before the re-check, and "waiting" seen by whoever reads the rings after the interrupt. Arming and the line holder's
/// release are both followed by full fences, so of a worker that registers as the holder leaves, at least one arms.
/// </para>
/// <para>
/// Nothing is allocated per wait: the waiter, the dispatch work item and the line's registration are made once; a
/// completed wait's continuation is an async method's own state-machine box, which the thread pool queues as it is.
/// A cancellable token registers a callback per wait (the token source reuses its nodes). Cancellation completes the
/// wait with <see cref="OperationCanceledException"/>; awaiting it switches the queue's notification off again on the
/// worker's side, so the next wait starts as the first did.
/// </para>
/// </remarks>
public sealed partial class VirtioNetDevice : IQueueWaiterOwner
{
    // _lineHolder while the asynchronous dispatch handles the line (neither a pair nor ProcessEvents).
    private const int DispatchHolder = int.MaxValue - 1;

    // Per pair: the receive queue's and the transmit queue's waiter.
    private QueueWaiter[] _receiveAsyncWaiters = [];

    private QueueWaiter[] _transmitAsyncWaiters = [];

    // True on a thread while it runs an asynchronous dispatch: a pool thread is nobody's worker, whatever queue it last
    // entered for an async caller, so work that belongs to a worker (an announcement on transmitq1) is left to it.
    [ThreadStatic]
    private static bool t_inAsyncDispatch;

    // Asynchronous waits pending on any queue: while non-zero, someone must watch the line.
    private int _asyncWaiting;

    // The line's callback and the thread-pool work item of this device.
    private DeviceInterruptDispatch? _dispatch;

    // Bring-up: the waiters and the dispatch, once.
    private void CreateAsyncWaiters()
    {
        _receiveAsyncWaiters = new QueueWaiter[_receiveQueues.Length];
        _transmitAsyncWaiters = new QueueWaiter[_transmitQueues.Length];
        for (int pair = 0; pair < _receiveQueues.Length; pair++)
        {
            _receiveAsyncWaiters[pair] = new QueueWaiter(this, pair, transmit: false);
            _transmitAsyncWaiters[pair] = new QueueWaiter(this, pair, transmit: true);
        }

        _dispatch = new DeviceInterruptDispatch(this);
    }

    /// <summary>Asynchronous dispatches run (for tests: proof that the line called back).</summary>
    internal long AsyncDispatches => _dispatch?.Dispatches ?? 0;

    // VirtioNetQueuePair.WaitForReceiveAsync.
    internal ValueTask WaitForReceiveAsync(VirtioNetReceiveQueue rx, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        // Adaptive mode polls for its budget first, on the caller's thread, as the synchronous wait does.
        if (HasUsedGated(rx) || BusyPollBeforeArming(rx, rx.QueueIndex / 2))
        {
            return default;
        }

        QueueWaiter waiter = _receiveAsyncWaiters[rx.QueueIndex / 2];
        ValueTask wait = waiter.Begin();
        Interlocked.Increment(ref _asyncWaiting);

        // §2.7.10: the request, then the re-check; a frame already there completes the wait now.
        bool armed;
        try
        {
            // Poll mode asks the device for nothing: the timer looks at the ring.
            armed = OperationMode == OperationMode.Poll ? !HasUsedGated(rx) : EnableInterruptsGated(rx);
        }
        catch (VirtioException e)
        {
            CompleteWaiter(waiter, byNotification: false, e);
            return wait;
        }

        return Watch(waiter, wait, armed, cancellationToken);
    }

    // VirtioNetQueuePair.WaitForTransmitRoomAsync: room now, or a delayed notification once about 3/4 of what is in
    // flight has been sent (Linux's virtqueue_enable_cb_delayed), so a full ring wakes its sender once per batch.
    internal ValueTask WaitForTransmitRoomAsync(VirtioNetTransmitQueue tx, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        QueueWaiter waiter = _transmitAsyncWaiters[tx.QueueIndex / 2];
        using QueueGate.Scope inside = tx.Gate.EnterScope();
        tx.Reclaim();
        if (tx.SlotsFree > 0)
        {
            return default;
        }

        ValueTask wait = waiter.Begin();
        Interlocked.Increment(ref _asyncWaiting);
        bool armed;
        try
        {
            armed = OperationMode == OperationMode.Poll || tx.Queue.EnableInterruptsDelayed();
        }
        catch (VirtioException e)
        {
            CompleteWaiter(waiter, byNotification: false, e);
            return wait;
        }

        return Watch(waiter, wait, armed, cancellationToken);
    }

    // After the request: complete now when the re-check found work, otherwise make sure the line is watched.
    private ValueTask Watch(QueueWaiter waiter, ValueTask wait, bool armed, CancellationToken cancellationToken)
    {
        if (!armed)
        {
            CompleteWaiter(waiter, byNotification: false, error: null);
            return wait;
        }

        waiter.Watch(cancellationToken);

        // Interrupt mode with a synchronous holder on the line: it completes this wait in its scan and arms the line
        // when it leaves (PassLine). Otherwise arm it now. The increment of _asyncWaiting above is a full fence, as is
        // the holder's release, so at least one of the two arms.
        if (OperationMode == OperationMode.Poll || Volatile.Read(ref _lineHolder) == NoHolder)
        {
            ArmAsync();
        }

        return wait;
    }

    // Someone waits asynchronously: have the line (or the timer) call back.
    private void ArmAsync()
    {
        if (_disposed)
        {
            return;
        }

        _dispatch!.Arm(UsesInterrupts ? _transport.Interrupt : null);
    }

    // Completes one pending wait (any thread); the count of pending waits follows.
    void IQueueWaiterOwner.CompleteWaiter(QueueWaiter waiter, bool byNotification, Exception? error) => CompleteWaiter(waiter, byNotification, error);

    void IQueueWaiterOwner.FinishWait(QueueWaiter waiter, bool byNotification) => FinishWait(waiter, byNotification);

    private void CompleteWaiter(QueueWaiter waiter, bool byNotification, Exception? error)
    {
        if (waiter.TryComplete(byNotification, error))
        {
            Interlocked.Decrement(ref _asyncWaiting);
        }
    }

    // Awaiting a completed wait, on the worker's side of the queue: notifications off again (the worker now takes what
    // is there and asks again when it next waits), and a wake-up by the device's notification counted for the queue.
    private void FinishWait(QueueWaiter waiter, bool byNotification)
    {
        if (_disposed)
        {
            return;
        }

        VirtioNetQueueStatistics statistics;
        IVirtqueue queue;
        QueueGate gate;
        if (waiter.Transmit)
        {
            VirtioNetTransmitQueue tx = _transmitQueues[waiter.Pair];
            (statistics, queue, gate) = (tx.Statistics, tx.Queue, tx.Gate);
        }
        else
        {
            VirtioNetReceiveQueue rx = _receiveQueues[waiter.Pair];
            (statistics, queue, gate) = (rx.Statistics, rx.Queue, rx.Gate);
        }

        if (byNotification)
        {
            statistics.AddInterrupt();
        }

        try
        {
            using QueueGate.Scope inside = gate.EnterScope();
            if (!queue.IsBroken)
            {
                queue.DisableInterrupts();
            }
        }
        catch (VirtioException)
        {
            // Recovering, or the device failed: the rebuilt queue starts with notifications off, and the worker's next
            // call says what happened.
        }
    }

    // The thread-pool side of the dispatcher's callback: handle the line as a holder would, complete the waits whose
    // queues moved, and arm again while anyone still waits.
    internal void DispatchAsyncWaits()
    {
        if (_disposed)
        {
            return;
        }

        t_inAsyncDispatch = true;
        try
        {
            if (OperationMode == OperationMode.Poll)
            {
                PollLink();
                CompleteReadyAsyncWaiters(byNotification: false);
            }
            else if (Interlocked.CompareExchange(ref _lineHolder, DispatchHolder, NoHolder) == NoHolder)
            {
                try
                {
                    // A zero wait rather than IsRaised: a platform that went away says so here (the qtest line throws).
                    if (_transport.Interrupt!.Wait(TimeSpan.Zero) && (HandleInterrupt() & InterruptCause.UsedBuffer) != 0)
                    {
                        WakeReceiveWaiters(except: NoHolder);
                    }
                }
                finally
                {
                    // Interlocked (a full fence): the release must be visible before PassLine looks for waiters.
                    Interlocked.Exchange(ref _lineHolder, NoHolder);
                }

                PassLine(NoHolder);
            }

            // Otherwise a synchronous waiter holds the line: it completes these waits and arms the line when it leaves.
        }
        catch (VirtioException e) when (TryRecoverFrom(e))
        {
            // Recovered (CompleteAllAsyncWaiters ran): the waiters look again.
        }
        catch (Exception e) when (e is VirtioException or ObjectDisposedException)
        {
            // The device cannot go on: every waiter learns it from its next call.
            CompleteAllAsyncWaiters();
        }
        finally
        {
            t_inAsyncDispatch = false;
        }

        if (Volatile.Read(ref _asyncWaiting) > 0 && (OperationMode == OperationMode.Poll || Volatile.Read(ref _lineHolder) == NoHolder))
        {
            ArmAsync();
        }
    }

    // After a used-buffer interrupt (or a poll): complete every pending wait whose queue has used buffers (or is broken:
    // its worker learns why from its next call). Reads only the device's side of each ring, as WakeReceiveWaiters does.
    private void CompleteReadyAsyncWaiters(bool byNotification)
    {
        if (Volatile.Read(ref _asyncWaiting) == 0)
        {
            return;
        }

        for (int pair = 0; pair < _receiveAsyncWaiters.Length; pair++)
        {
            QueueWaiter rx = _receiveAsyncWaiters[pair];
            if (rx.IsWaiting && HasWorkForWaiter(_receiveQueues[pair].Queue))
            {
                CompleteWaiter(rx, byNotification, error: null);
            }

            QueueWaiter tx = _transmitAsyncWaiters[pair];
            if (tx.IsWaiting && HasWorkForWaiter(_transmitQueues[pair].Queue))
            {
                CompleteWaiter(tx, byNotification, error: null);
            }
        }
    }

    // Recovery rebuilt the queues (notifications off), or the device is going away: every pending wait completes, and
    // its worker looks again (and finds the recovered queue, or the reason it cannot go on).
    private void CompleteAllAsyncWaiters(Exception? error = null)
    {
        for (int pair = 0; pair < _receiveAsyncWaiters.Length; pair++)
        {
            CompleteWaiter(_receiveAsyncWaiters[pair], byNotification: false, error);
            CompleteWaiter(_transmitAsyncWaiters[pair], byNotification: false, error);
        }
    }
}
