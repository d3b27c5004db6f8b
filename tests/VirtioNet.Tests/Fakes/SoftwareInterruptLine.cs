using VirtioNet.Platform;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// A level-triggered interrupt line in software (not a real line): <see cref="Raise"/> and <see cref="Lower"/> are called
/// by <see cref="SoftwareSharedLineTransport"/> as its device signals and the driver acknowledges. <see cref="BeforeWait"/>
/// runs at the start of every <see cref="Wait"/>, i.e. after the driver's last check and before it sleeps: the place a
/// test puts a frame to prove it is not lost.
/// </summary>
internal sealed class SoftwareInterruptLine : IInterruptLine, IDisposable
{
    private readonly ManualResetEventSlim _level = new(false);
    private long _raiseCount;
    private int _waiters;
    private int _maxConcurrentWaiters;
    private int _waits;

    /// <summary>Creates a low line.</summary>
    public SoftwareInterruptLine()
    {
        // The event creates its lock object on its first blocking wait; do it now, so that allocation tests of the
        // driver's waits see none of the fake's.
        _level.Wait(1);
    }

    public int Number => 1;

    public bool IsRaised => _level.IsSet;

    public long RaiseCount => Interlocked.Read(ref _raiseCount);

    /// <summary>Called at the start of each wait, on the waiting thread.</summary>
    public Action? BeforeWait { get; set; }

    /// <summary>Threads inside <see cref="Wait"/> now.</summary>
    public int WaitersInside => Volatile.Read(ref _waiters);

    /// <summary>Waits counted so far.</summary>
    public int Waits => Volatile.Read(ref _waits);

    /// <summary>The most threads ever inside <see cref="Wait"/> at once (the design allows one).</summary>
    public int MaxConcurrentWaiters => Volatile.Read(ref _maxConcurrentWaiters);

    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        int inside = Interlocked.Increment(ref _waiters);
        Interlocked.Increment(ref _waits);
        int max;
        while (inside > (max = Volatile.Read(ref _maxConcurrentWaiters)) && Interlocked.CompareExchange(ref _maxConcurrentWaiters, inside, max) != max)
        {
        }

        try
        {
            BeforeWait?.Invoke();
            return _level.Wait(timeout, cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _waiters);
        }
    }

    public void Raise()
    {
        if (!_level.IsSet)
        {
            Interlocked.Increment(ref _raiseCount);
        }

        _level.Set();
    }

    public void Lower() => _level.Reset();

    public void Dispose() => _level.Dispose();
}
