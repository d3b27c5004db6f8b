using System.Diagnostics;
using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>
/// The transmit watchdog (<see cref="VirtioNetOptions.TransmitTimeout"/>): a device that stops returning transmit
/// buffers is noticed, counted per queue and, with <see cref="VirtioNetOptions.AutoRecover"/>, recovered. Linux's
/// dev_watchdog (a timer that calls the driver's <c>ndo_tx_timeout</c> when a queue has been stopped for
/// <c>watchdog_timeo</c> with the carrier on) and FreeBSD vtnet's tick watchdog do the same.
/// </summary>
/// <remarks>
/// A timer checks every transmit queue a few times per timeout (<see cref="VirtioNetTransmitQueue.WatchdogFindsStalled"/>),
/// so the workers pay nothing but an add per reclaim, and a stall is noticed whatever the caller does meanwhile (sending,
/// waiting for receive, or nothing). The check skips while the link is down (a device may hold frames then, and
/// QEMU drops them) and while a recovery or a suspend runs. The recovery itself runs on the timer's thread, as
/// recovery may on any thread: it takes the control lock and closes every queue's gate as usual.
/// </remarks>
public sealed partial class VirtioNetDevice
{
    // The watchdog's timer; null when the watchdog is off (or the device is suspended).
    private Timer? _watchdogTimer;

    // 1 while a timer callback runs: a slow recovery must not have a second callback start beside it.
    private int _watchdogRunning;

    // The thread running the watchdog callback, so that a Dispose from a handler it raised does not wait for itself.
    private int _watchdogThreadId;

    // Transmit timeouts on every queue together.
    private long _transmitTimeouts;

    // Set when the link was down at the last check: the queues' views start afresh once it is up again.
    private bool _watchdogSawLinkDown;

    /// <summary>
    /// How many times the transmit watchdog found a transmit queue holding frames the device returned nothing of for
    /// <see cref="VirtioNetOptions.TransmitTimeout"/>, over all queues (each queue's count is
    /// <see cref="VirtioNetQueueStatistics.TransmitTimeouts"/>).
    /// </summary>
    public long TransmitTimeouts => Interlocked.Read(ref _transmitTimeouts);

    // Bring-up and resume: starts the timer when the watchdog is on.
    private void StartWatchdog()
    {
        if (_options.TransmitTimeout == Timeout.InfiniteTimeSpan || _watchdogTimer is not null)
        {
            return;
        }

        long now = Stopwatch.GetTimestamp();
        foreach (VirtioNetTransmitQueue tx in _transmitQueues)
        {
            tx.WatchdogRestart(now);
        }

        // Four checks per timeout: a stall is seen between 1 and 1.25 timeouts after the last progress.
        TimeSpan period = TimeSpan.FromTicks(Math.Clamp(_options.TransmitTimeout.Ticks / 4, TimeSpan.TicksPerMillisecond * 5, TimeSpan.TicksPerSecond));
        _watchdogTimer = new Timer(static state => ((VirtioNetDevice)state!).OnWatchdogTick(), this, period, period);
    }

    // Dispose and suspend: stops the timer and waits for a callback that is running (unless it is this thread's own).
    private void StopWatchdog()
    {
        Timer? timer = Interlocked.Exchange(ref _watchdogTimer, null);
        if (timer is null)
        {
            return;
        }

        if (Volatile.Read(ref _watchdogThreadId) == Environment.CurrentManagedThreadId)
        {
            timer.Dispose();
            return;
        }

        using var stopped = new ManualResetEvent(false);
        if (timer.Dispose(stopped))
        {
            stopped.WaitOne();
        }
    }

    private void OnWatchdogTick()
    {
        if (Interlocked.Exchange(ref _watchdogRunning, 1) != 0)
        {
            return;
        }

        Volatile.Write(ref _watchdogThreadId, Environment.CurrentManagedThreadId);
        try
        {
            string? stalled = FindStalledTransmitQueues();
            if (stalled is null)
            {
                return;
            }

            Post(VirtioNetDeviceEventKind.TransmitTimeout, stalled);
            if (_options.AutoRecover && RecoveryFailure is null && !_disposed)
            {
                try
                {
                    _ = RecoverCore(stalled, onlyIfFaulty: false);
                }
                catch (Exception e) when (e is VirtioException or ObjectDisposedException)
                {
                    // A failed recovery is latched in RecoveryFailure (the device is FAILED) and reported by the next call;
                    // a timeout (a worker stayed inside its queue) leaves the device as it was, for the next tick.
                }
            }
        }
        finally
        {
            Volatile.Write(ref _watchdogThreadId, 0);
            Volatile.Write(ref _watchdogRunning, 0);
        }
    }

    // Samples every transmit queue; counts and names those that timed out, or returns null. Skipped while a recovery (or
    // a suspend, which holds the same lock) rebuilds the queues.
    private string? FindStalledTransmitQueues()
    {
        if (!_recoveryLock.TryEnter())
        {
            return null;
        }

        try
        {
            if (_disposed || _suspended || RecoveryFailure is not null)
            {
                return null;
            }

            long now = Stopwatch.GetTimestamp();
            if (!IsLinkUp)
            {
                _watchdogSawLinkDown = true;
                return null;
            }

            if (_watchdogSawLinkDown)
            {
                _watchdogSawLinkDown = false;
                foreach (VirtioNetTransmitQueue tx in _transmitQueues)
                {
                    tx.WatchdogRestart(now);
                }

                return null;
            }

            long timeoutTicks = (long)(_options.TransmitTimeout.TotalSeconds * Stopwatch.Frequency);
            string? stalled = null;
            // A pair the device was told not to use (VQ_PAIRS_SET, §5.1.6.5.5) keeps what is on its ring, rightly.
            int active = Math.Min(Control.ActiveQueuePairs, _transmitQueues.Length);
            for (int pair = 0; pair < _transmitQueues.Length; pair++)
            {
                VirtioNetTransmitQueue tx = _transmitQueues[pair];
                if (pair >= active)
                {
                    tx.WatchdogRestart(now);
                    continue;
                }

                if (tx.WatchdogFindsStalled(now, timeoutTicks))
                {
                    tx.Statistics.AddTransmitTimeout();
                    Interlocked.Increment(ref _transmitTimeouts);
                    string what = $"{tx.Statistics.Name} held {tx.Queue.Outstanding} frames and the device returned none for {_options.TransmitTimeout.TotalSeconds:0.###} s (transmit timeout)";
                    stalled = stalled is null ? what : $"{stalled}; {what}";
                }
            }

            return stalled;
        }
        finally
        {
            _recoveryLock.Exit();
        }
    }
}
