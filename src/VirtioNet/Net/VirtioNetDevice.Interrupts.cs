using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// Interrupt mode with one waiting worker per queue pair, whatever the interrupt layout: one line for the whole device
/// (virtio-mmio, PCI INTx, MSI-X with one shared vector, vhost-user's set of call eventfds) or one MSI-X vector per queue
/// (which <see cref="IVirtioTransport.Interrupt"/> presents as one line that is raised while any vector is latched).
/// </summary>
/// <remarks>
/// <para>
/// The design is a baton. A worker that finds its receive queue empty registers as that pair's waiter, asks the device
/// for a used-buffer notification on its queue (§2.7.7 flags or §2.7.10 used_event, then re-checks the used ring, so a
/// frame published in between is taken now instead of waited for), and then either takes the line or sleeps on its
/// pair's own wake-up event. At most one worker holds the line (<c>_lineHolder</c>): it alone waits on the platform's
/// interrupt line, and when the line fires it alone reads and acknowledges the cause (InterruptStatus/InterruptACK on
/// mmio, the ISR read on PCI, the vectors' latches with MSI-X, the call eventfds on vhost-user), handles a configuration
/// change (device health, link state), then looks at the used ring of every pair that has a waiter and sets the wake-up
/// event of each whose queue has work. The holder keeps the line until its own queue has work or its time is up; on
/// leaving it gives the baton to another waiter by setting that waiter's event, and every worker that leaves the wait
/// does the same check, so the line is never left unwatched while someone waits.
/// </para>
/// <para>
/// Why no wake-up is lost. (1) A frame the device publishes before a waiter's notification request is seen by the
/// re-check after the request (the race of §2.7.10). (2) One published after it makes the device interrupt; the line is
/// level-triggered (or latched, for MSI-X and eventfds) until acknowledged, so the holder sees it even if it was not yet
/// waiting, and it reads the used rings only after acknowledging, so an interrupt that arrives during its scan raises the
/// line again. (3) A waiter's registration comes before its notification request, so the scan that follows the device's
/// interrupt sees the registration. (4) A waiter resets its event before it re-checks its queue and the baton, so a
/// wake-up set after the reset is kept for its wait; one set before finds the condition already true at the re-check.
/// (5) Registration, taking and releasing the baton are interlocked (full fences): a worker either takes the line itself
/// or is seen by the worker that releases it.
/// </para>
/// <para>
/// Threading contract. The data path of a pair (WaitForReceive(pair), TryReceive(pair), TrySend(pair), the burst calls,
/// ReclaimTransmitted(pair)) is called by the one worker that owns the pair; different pairs' workers run concurrently and
/// take no lock; two threads waiting for the same pair is refused (<see cref="InvalidOperationException"/>). The line
/// holder touches nothing of another pair but a read of its used index (against the index its owner saw last, which a
/// waiting owner does not change) and a set of its event. <see cref="LinkStateChanged"/> is raised, and a
/// DEVICE_NEEDS_RESET seen in a configuration interrupt is thrown, on whichever worker's thread held the line, never on
/// two threads at once. <see cref="ProcessEvents"/> may be called from any thread: it handles a pending interrupt only if
/// no worker holds the line (the holder handles it otherwise). The configuration methods go through the serialized
/// control queue from any thread; statistics may be read from any thread. Waiting allocates nothing (with
/// <see cref="CancellationToken.None"/>; a cancellable token registers a callback per sleep) and never spins on the
/// rings: the holder sleeps in the platform's line wait, the others in a <see cref="ManualResetEventSlim"/>. (The QEMU
/// platform's MSI-X vectors are memory cells that the platform's wait itself polls, see <see cref="MemoryCellInterruptLine"/>.)
/// </para>
/// </remarks>
public sealed partial class VirtioNetDevice
{
    // _lineHolder when no worker holds the line.
    private const int NoHolder = -1;

    // _lineHolder while ProcessEvents handles a pending interrupt (not a pair).
    private const int ProcessEventsHolder = int.MaxValue;

    // The longest single sleep; a longer timeout is waited in slices (ManualResetEventSlim takes at most int.MaxValue ms).
    private static readonly TimeSpan LongestSleep = TimeSpan.FromHours(1);

    // The pair whose worker waits on the interrupt line and dispatches its interrupts, or NoHolder.
    private int _lineHolder = NoHolder;

    // Per pair: 1 while a worker waits for that pair's receive queue in interrupt mode.
    private int[] _receiveWaiting = [];

    // Per pair: set by the line holder when that pair's queue has work, or to hand the line over.
    private ManualResetEventSlim[] _receiveWakeups = [];

    // Used-buffer interrupts acknowledged, whichever queue they were for.
    private long _usedBufferInterrupts;

    // Waiters the line holder woke because their queues had work (for tests: proof that the dispatch ran).
    private long _waitersWokenByHolder;

    /// <summary>
    /// Used-buffer interrupts the driver acknowledged, for all queues together (a shared line cannot tell which queue
    /// raised it; <see cref="VirtioNetQueueStatistics.Interrupts"/> counts the ones that woke each queue's waiter).
    /// </summary>
    public long UsedBufferInterrupts => Interlocked.Read(ref _usedBufferInterrupts);

    // Bring-up: one wake-up event per pair, created once so that waiting allocates nothing.
    private void CreateReceiveWaiters()
    {
        _receiveWaiting = new int[_receiveQueues.Length];
        _receiveWakeups = new ManualResetEventSlim[_receiveQueues.Length];
        for (int pair = 0; pair < _receiveWakeups.Length; pair++)
        {
            _receiveWakeups[pair] = new ManualResetEventSlim(false, spinCount: 1);
            if (UsesInterrupts && _receiveWakeups.Length > 1)
            {
                // The event creates its lock object on its first blocking wait; one short wait here (1 ms, nothing sets
                // it) does that at bring-up, so that no later wake-up allocates.
                _receiveWakeups[pair].Wait(1);
            }
        }
    }

    private void DisposeReceiveWaiters()
    {
        foreach (ManualResetEventSlim wakeup in _receiveWakeups)
        {
            wakeup.Dispose();
        }
    }

    /// <summary>
    /// Interrupt mode: waits until <paramref name="pair"/>'s receive queue has a used buffer (true) or the timeout passes
    /// (false). Any number of pairs' workers may wait at once, one per pair; see the type's remarks for the design.
    /// </summary>
    private bool WaitForReceiveOnInterrupt(int pair, TimeSpan timeout, CancellationToken cancellationToken)
    {
        VirtioNetReceiveQueue rx = _receiveQueues[pair];
        IVirtqueue queue = rx.Queue;
        ManualResetEventSlim wakeup = _receiveWakeups[pair];
        long start = Stopwatch.GetTimestamp();
        if (HasUsedGated(rx))
        {
            return true;
        }

        if (Interlocked.Exchange(ref _receiveWaiting[pair], 1) != 0)
        {
            throw new InvalidOperationException($"Another thread is already waiting for queue pair {pair}: each pair belongs to one worker at a time.");
        }

        // True once this wait found nothing after asking for a notification and went to sleep: a frame that ends it then
        // came by an interrupt (directly, or through the worker holding the line), and is counted as one for this queue.
        bool slept = false;
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();

                // Before the checks below: a wake-up set from here on is kept for the wait at the end of the loop.
                wakeup.Reset();

                // §2.7.10: ask for a notification, then re-check; a buffer used in between would otherwise never interrupt.
                if (!EnableInterruptsGated(rx))
                {
                    return Woken(rx, slept);
                }

                slept = true;
                if (Interlocked.CompareExchange(ref _lineHolder, pair, NoHolder) == NoHolder)
                {
                    bool work;
                    try
                    {
                        work = HoldLine(pair, rx, start, timeout, cancellationToken);
                    }
                    finally
                    {
                        // Interlocked (a full fence): the release must be visible before this thread looks for waiters in PassLine.
                        Interlocked.Exchange(ref _lineHolder, NoHolder);
                    }

                    return work || HasUsedGated(rx) ? Woken(rx, slept) : TimedOut(rx);
                }

                // Another worker holds the line and will set the event when this queue has work or the line is free.
                TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(start);
                bool signalled = remaining > TimeSpan.Zero && wakeup.Wait(Min(remaining, LongestSleep), cancellationToken);
                if (queue.IsBroken || HasUsedGated(rx))
                {
                    return Woken(rx, slept);
                }

                if (!signalled && Stopwatch.GetElapsedTime(start) >= timeout)
                {
                    return TimedOut(rx);
                }

                // Woken to take the line over (or a stale wake-up): go round, re-check, and try to take it.
            }
        }
        finally
        {
            Interlocked.Exchange(ref _receiveWaiting[pair], 0);
            PassLine(pair);
        }
    }

    // A wait that ends with a frame (or a broken queue, whose owner learns why from its next call): notifications off
    // again, since the worker now takes frames until the queue is empty and only asks again when it next waits.
    private static bool Woken(VirtioNetReceiveQueue rx, bool slept)
    {
        if (rx.Queue.IsBroken)
        {
            return true;
        }

        if (slept)
        {
            rx.Statistics.AddInterrupt();
        }

        return InGate(rx, RingStep.Disarm);
    }

    // Time is up: notifications off, and a last look, for a frame used just before they were.
    private static bool TimedOut(VirtioNetReceiveQueue rx) => InGate(rx, RingStep.DisarmAndLook);

    private static bool HasUsedGated(VirtioNetReceiveQueue rx) => InGate(rx, RingStep.Look);

    private static bool EnableInterruptsGated(VirtioNetReceiveQueue rx) => InGate(rx, RingStep.Arm);

    // What a wait does to a receive queue's ring.
    private enum RingStep
    {
        Look,
        Arm,
        Disarm,
        DisarmAndLook,
    }

    // The ring is touched only inside the queue's gate (recovery rebuilds it with the gate closed), never across a
    // sleep. Returns whether the queue has a used buffer (Look, DisarmAndLook), whether the arming held (Arm: false
    // when a buffer was used meanwhile), or true (Disarm).
    private static bool InGate(VirtioNetReceiveQueue rx, RingStep step)
    {
        using QueueGate.Scope inside = rx.Gate.EnterScope();
        switch (step)
        {
            case RingStep.Arm:
                return rx.Queue.EnableInterrupts();
            case RingStep.Disarm:
                rx.Queue.DisableInterrupts();
                return true;
            case RingStep.DisarmAndLook:
                rx.Queue.DisableInterrupts();
                return rx.HasPending;
            default:
                return rx.HasPending;
        }
    }

    // The line holder's loop: wait on the line, acknowledge, dispatch, until the holder's own queue has work or time is up.
    private bool HoldLine(int pair, VirtioNetReceiveQueue rx, long start, TimeSpan timeout, CancellationToken cancellationToken)
    {
        IInterruptLine line = _transport.Interrupt!;
        while (true)
        {
            TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(start);
            bool raised = line.IsRaised || (remaining > TimeSpan.Zero && line.Wait(Min(remaining, LongestSleep), cancellationToken));
            if (raised)
            {
                InterruptCause cause = HandleInterrupt();
                if ((cause & InterruptCause.UsedBuffer) != 0)
                {
                    WakeReceiveWaiters(except: pair);
                }

                if (HasUsedGated(rx))
                {
                    return true;
                }

                if (cause == InterruptCause.None && line.IsRaised)
                {
                    // A line that stays raised with nothing to acknowledge: QEMU stops driving the interrupt of a device
                    // it marked broken (virtio_notify_vector returns early), so the last level stays. Ask the device
                    // (DEVICE_NEEDS_RESET on modern ones; the exception reaches recovery) and do not spin on the line.
                    CheckNeedsResetPolled();
                    Thread.Sleep(1);
                }

                // The timeout holds even while interrupts keep coming.
                if (Stopwatch.GetElapsedTime(start) >= timeout)
                {
                    return false;
                }

                continue;
            }

            if (Stopwatch.GetElapsedTime(start) >= timeout)
            {
                return false;
            }

            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    // After an acknowledged used-buffer interrupt: wake every waiter whose queue has work. Reads only the device's side of
    // each ring (used.idx against the owner's last seen index, which a waiting owner does not change).
    private void WakeReceiveWaiters(int except)
    {
        for (int pair = 0; pair < _receiveWaiting.Length; pair++)
        {
            if (pair != except && Volatile.Read(ref _receiveWaiting[pair]) != 0 && HasWorkForWaiter(_receiveQueues[pair].Queue))
            {
                Interlocked.Increment(ref _waitersWokenByHolder);
                _receiveWakeups[pair].Set();
            }
        }

        // The asynchronous waits in the same scan (VirtioNetDevice.Async.cs).
        CompleteReadyAsyncWaiters(byNotification: true);
    }

    // A broken queue counts as work: its owner learns why from its own calls.
    private static bool HasWorkForWaiter(IVirtqueue queue)
    {
        try
        {
            return queue.IsBroken || queue.HasUsed;
        }
        catch (VirtioException)
        {
            return true;
        }
    }

    // When a worker leaves the wait or the line: if nobody holds the line, wake one waiter (the next pair after
    // `leaving`, which is a pair or NoHolder) so that it takes the line. A waiter woken just as it leaves passes it on.
    private void PassLine(int leaving)
    {
        if (Volatile.Read(ref _lineHolder) != NoHolder)
        {
            return;
        }

        int pairs = _receiveWaiting.Length;
        for (int step = 1; step <= pairs; step++)
        {
            int pair = (leaving + step) % pairs;
            if (pair != leaving && Volatile.Read(ref _receiveWaiting[pair]) != 0)
            {
                _receiveWakeups[pair].Set();
                return;
            }
        }

        // No synchronous waiter left to take the line: the platform's dispatcher watches it for the asynchronous ones.
        if (Volatile.Read(ref _asyncWaiting) > 0)
        {
            ArmAsync();
        }
    }

    // ProcessEvents in interrupt mode: handle a pending interrupt unless a worker holds the line (it will handle it).
    private void ProcessPendingInterrupt()
    {
        if (Interlocked.CompareExchange(ref _lineHolder, ProcessEventsHolder, NoHolder) != NoHolder)
        {
            return;
        }

        try
        {
            if (_transport.Interrupt!.IsRaised && (HandleInterrupt() & InterruptCause.UsedBuffer) != 0)
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

    /// <summary>True while a worker waits for <paramref name="pair"/>'s receive queue in interrupt mode (for tests).</summary>
    internal bool IsWaitingForReceive(int pair) => Volatile.Read(ref _receiveWaiting[pair]) != 0;

    /// <summary>Waiters the line holder woke because their queues had work (for tests).</summary>
    internal long WaitersWokenByHolder => Interlocked.Read(ref _waitersWokenByHolder);

    /// <summary>The pair whose worker holds the interrupt line, or -1 (for tests).</summary>
    internal int LineHolder => Volatile.Read(ref _lineHolder);

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
