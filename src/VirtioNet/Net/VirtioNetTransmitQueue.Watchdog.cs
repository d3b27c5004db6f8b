using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>
/// The transmit watchdog's view of one queue. The worker adds what each reclaim took back to a counter (one add per
/// call, no clock); the device's watchdog timer samples that counter, the chains outstanding and the device's used index
/// a few times per timeout, and notes when it last saw progress. Nothing here runs on the packet path but the add.
/// </summary>
internal sealed partial class VirtioNetTransmitQueue
{
    // Chains the worker took back from the device, ever (written by the worker only).
    private long _completions;

    // The watchdog's last sample of _completions (the timer thread only).
    private long _watchCompletions = -1;

    // When the watchdog last saw progress, or the queue empty (Stopwatch ticks; the timer thread only).
    private long _watchProgressAt;

    // Called by the worker after each reclaim, inside the gate.
    private void NoteReclaimed(int chains) => Volatile.Write(ref _completions, _completions + chains);

    /// <summary>
    /// The watchdog's sample, on its timer thread: true when the queue has held frames the device returned nothing of
    /// since <paramref name="timeoutTicks"/> before <paramref name="now"/> (and then it starts a new period, so one stall
    /// is counted once per timeout). Progress is a chain the worker took back, or a used entry the device published that
    /// the worker has not taken yet (an idle worker is not a stalled device). Reads the device's side of the ring only,
    /// as the interrupt line's holder does for other pairs; a stale value can only make it see progress.
    /// </summary>
    internal bool WatchdogFindsStalled(long now, long timeoutTicks)
    {
        long completions = Volatile.Read(ref _completions);
        bool progress = completions != _watchCompletions || _queue.Outstanding == 0;
        if (!progress)
        {
            try
            {
                progress = _queue.IsBroken || _queue.HasUsed;
            }
            catch (VirtioException)
            {
                // A broken queue is recovery's business, not the watchdog's.
                progress = true;
            }
        }

        if (progress)
        {
            _watchCompletions = completions;
            _watchProgressAt = now;
            return false;
        }

        if (now - _watchProgressAt < timeoutTicks)
        {
            return false;
        }

        _watchProgressAt = now;
        return true;
    }

    /// <summary>Starts the watchdog's view afresh (after the link came up, a recovery or a resume).</summary>
    internal void WatchdogRestart(long now)
    {
        _watchCompletions = -1;
        _watchProgressAt = now;
    }
}
