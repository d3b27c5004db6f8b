namespace VirtioNet.Tests.Fakes;

/// <summary>
/// A thread of its own running one call that may block (a driver's wait), its result or exception kept for the test
/// thread: a blocking wait on a thread-pool task would trip xUnit's deadlock rule and starve the pool.
/// </summary>
internal sealed class WorkerThread
{
    private readonly Thread _thread;
    private bool _result;
    private Exception? _error;

    private WorkerThread(Func<bool> body)
    {
        _thread = new Thread(() =>
        {
            try
            {
                _result = body();
            }
            catch (Exception e)
            {
                _error = e;
            }
        })
        {
            IsBackground = true,
        };
    }

    /// <summary>Whether the call has returned or thrown.</summary>
    public bool IsCompleted => !_thread.IsAlive;

    /// <summary>The call's result; rethrows (wrapped) what it threw.</summary>
    public bool Result => _error is null ? _result : throw new InvalidOperationException("The worker failed.", _error);

    public static WorkerThread Start(Func<bool> body)
    {
        var worker = new WorkerThread(body);
        worker._thread.Start();
        return worker;
    }

    public bool Join(TimeSpan timeout) => _thread.Join(timeout);
}
