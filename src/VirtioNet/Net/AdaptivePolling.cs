namespace VirtioNet.Net;

/// <summary>
/// The busy-poll budget of one receive queue in <see cref="OperationMode.Adaptive"/>, tuned by what each wait finds.
/// Owned by the queue's worker (one thread at a time, as the queue is); allocates nothing.
/// </summary>
/// <remarks>
/// Two signals, both counted in frames, never in time, so the tuning is the same on a fast or a loaded machine:
/// <list type="bullet">
/// <item>A wait whose polling finds a frame is a hit: the traffic is dense enough that polling catches frames before a
/// sleep would have, so the budget doubles (up to the maximum).</item>
/// <item>A wait that spends its budget arms the notification and sleeps: the budget halves (down to the minimum). What
/// the wake-up then finds (the frames taken between the arming and the next wait) says which way to go next: a pile of
/// at least <see cref="DenseWakeup"/> frames means frames queued up while the worker slept (dense traffic: double the
/// budget), one or two mean the sleep was worth it (sparse traffic: halve it again).</item>
/// </list>
/// At a few thousand frames a second every wait sleeps and the budget sits at its minimum, so a frame costs what it costs
/// in interrupt mode plus a few looks; under a flood the budget sits at its maximum and the worker never sleeps, as in
/// poll mode. The same shape as Linux's adaptive NAPI busy-poll and DPDK's power-management "monitor then pause" modes.
/// </remarks>
internal sealed class AdaptivePolling
{
    /// <summary>A wake-up that finds at least this many frames (a burst's worth) had let them pile up.</summary>
    internal const int DenseWakeup = 32;

    /// <summary>A wake-up that finds at most this many frames was worth its sleep.</summary>
    internal const int SparseWakeup = 2;

    // The budget's bounds, in looks.
    private readonly int _max;
    private readonly int _min;

    // The receive queue's packet count when the last wait armed the notification; -1 when the last wait was a hit.
    private long _packetsAtArm = -1;

    /// <summary>A tuner starting at <paramref name="maxBudget"/> looks, adapting between a sixteenth of it and it.</summary>
    public AdaptivePolling(int maxBudget)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBudget, 1);
        _max = maxBudget;
        _min = Math.Max(1, maxBudget / 16);
        Budget = maxBudget;
    }

    /// <summary>The looks the next wait makes before arming.</summary>
    public int Budget { get; private set; }

    /// <summary>The smallest budget.</summary>
    public int MinimumBudget => _min;

    /// <summary>The largest budget.</summary>
    public int MaximumBudget => _max;

    /// <summary>Waits whose polling found a frame.</summary>
    public long Hits { get; private set; }

    /// <summary>Waits that spent the budget and armed the notification.</summary>
    public long Arms { get; private set; }

    /// <summary>
    /// A wait begins; <paramref name="packets"/> is the queue's packet count now. Settles what the previous wake-up
    /// found and returns the budget for this wait.
    /// </summary>
    public int BeginWait(long packets)
    {
        if (_packetsAtArm >= 0)
        {
            long found = packets - _packetsAtArm;
            if (found >= DenseWakeup)
            {
                Grow();
            }
            else if (found <= SparseWakeup)
            {
                Shrink();
            }

            _packetsAtArm = -1;
        }

        return Budget;
    }

    /// <summary>The wait's polling found a frame.</summary>
    public void Hit()
    {
        Hits++;
        Grow();
    }

    /// <summary>The wait spent its budget and armed the notification; <paramref name="packets"/> is the packet count now.</summary>
    public void Armed(long packets)
    {
        Arms++;
        _packetsAtArm = packets;
        Shrink();
    }

    private void Grow() => Budget = Math.Min(_max, Budget * 2);

    private void Shrink() => Budget = Math.Max(_min, Budget / 2);
}
