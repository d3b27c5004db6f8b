namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// One dedicated thread that runs an async body and every continuation posted back to it, in order: async code
/// "driven from a single thread". Posting is the only way in; the queue is made once with room to spare, so the loop
/// itself allocates nothing while it runs.
/// </summary>
internal sealed class SingleThreadLoop : SynchronizationContext
{
    private readonly Queue<(SendOrPostCallback Callback, object? State)> _work = new(4096);

    private readonly object _gate = new();

    private bool _done;

    private SingleThreadLoop()
    {
    }

    /// <summary>The loop's thread id, for tests that check where code ran.</summary>
    public int ThreadId { get; private set; }

    /// <summary>
    /// Runs <paramref name="body"/> on a new thread until it completes, and completes with it (its failure included);
    /// the caller's thread is not blocked meanwhile. Fails with <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    public static async Task RunAsync(Func<SingleThreadLoop, Task> body, TimeSpan timeout)
    {
        var loop = new SingleThreadLoop();
        var finished = new TaskCompletionSource<Task>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            loop.ThreadId = Environment.CurrentManagedThreadId;
            SetSynchronizationContext(loop);
            Task task = body(loop);
            task.ContinueWith(_ => loop.Stop(), TaskScheduler.Default);
            loop.RunUntilStopped();
            finished.SetResult(task);
        })
        { IsBackground = true, Name = "single-thread loop" };
        thread.Start();
        try
        {
            await (await finished.Task.WaitAsync(timeout)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            loop.Stop();
            throw new TimeoutException($"The single-thread loop did not finish within {timeout.TotalSeconds} s.");
        }
    }

    /// <inheritdoc />
    public override void Post(SendOrPostCallback d, object? state)
    {
        lock (_gate)
        {
            _work.Enqueue((d, state));
            Monitor.Pulse(_gate);
        }
    }

    /// <inheritdoc />
    public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException("The loop only takes posted work.");

    private void Stop()
    {
        lock (_gate)
        {
            _done = true;
            Monitor.Pulse(_gate);
        }
    }

    private void RunUntilStopped()
    {
        while (true)
        {
            (SendOrPostCallback Callback, object? State) item;
            lock (_gate)
            {
                while (_work.Count == 0 && !_done)
                {
                    Monitor.Wait(_gate);
                }

                if (_work.Count == 0)
                {
                    return;
                }

                item = _work.Dequeue();
            }

            item.Callback(item.State);
        }
    }
}
