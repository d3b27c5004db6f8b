namespace VirtioNet.Service;

/// <summary>
/// Parks the pumps of a service while its device is suspended. Each pump thread registers while it runs and passes a
/// checkpoint at the top of each round (outside any device call); <see cref="TryPark"/> asks them to stop there and
/// waits until every registered thread has, so that the device is suspended with no pump inside a queue call, and
/// <see cref="Release"/> lets them go on. The checkpoint costs one volatile read while nothing is asked.
/// </summary>
internal sealed class PumpPause
{
    // A monitor, not a Lock: the pumps wait on it with Monitor.Wait.
    private readonly object _lock = new();

    // True from TryPark to Release.
    private volatile bool _requested;

    // Pump threads running, and how many of them wait at their checkpoint.
    private int _running;
    private int _parked;

    /// <summary>A pump thread starts; it must call <see cref="Leave"/> when it ends.</summary>
    public void Enter()
    {
        lock (_lock)
        {
            _running++;
        }
    }

    /// <summary>A pump thread ends.</summary>
    public void Leave()
    {
        lock (_lock)
        {
            _running--;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>A pump's checkpoint: returns at once unless parking was asked for; then waits until released or stopping.</summary>
    public void Checkpoint(CancellationToken stopping)
    {
        if (!_requested)
        {
            return;
        }

        lock (_lock)
        {
            _parked++;
            Monitor.PulseAll(_lock);
            try
            {
                while (_requested && !stopping.IsCancellationRequested)
                {
                    Monitor.Wait(_lock, 100);
                }
            }
            finally
            {
                _parked--;
            }
        }
    }

    /// <summary>Asks every pump to park and waits up to <paramref name="timeout"/> until all have; on timeout releases them and returns false.</summary>
    public bool TryPark(TimeSpan timeout)
    {
        lock (_lock)
        {
            _requested = true;
            DateTime deadline = DateTime.UtcNow + timeout;
            while (_parked < _running)
            {
                TimeSpan left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    _requested = false;
                    Monitor.PulseAll(_lock);
                    return false;
                }

                Monitor.Wait(_lock, left);
            }

            return true;
        }
    }

    /// <summary>Lets parked pumps go on.</summary>
    public void Release()
    {
        lock (_lock)
        {
            _requested = false;
            Monitor.PulseAll(_lock);
        }
    }
}
