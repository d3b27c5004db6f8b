using VirtioNet.Net;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The reusable value-task source behind the queue pair's asynchronous waits: one object per queue, a new version per
/// wait, completed exactly once by whoever gets there first, cancellation that leaves it ready for the next wait, and no
/// allocation per wait.
/// </summary>
public sealed class QueueWaiterTests
{
    [Fact]
    public async Task AWaitCompletesWhenTheDispatcherCompletesItAndTheNextWaitReusesTheSameSource()
    {
        var owner = new RecordingOwner();
        var waiter = new QueueWaiter(owner, pair: 0, transmit: false);

        ValueTask first = waiter.Begin();
        Assert.False(first.IsCompleted);
        Assert.True(waiter.IsWaiting);
        Assert.True(owner.Complete(waiter, byNotification: true));
        await first;
        Assert.Equal([true], owner.Finished);
        Assert.False(waiter.IsWaiting);

        ValueTask second = waiter.Begin();
        Assert.False(second.IsCompleted);
        Assert.True(owner.Complete(waiter, byNotification: false));
        await second;
        Assert.Equal([true, false], owner.Finished);
    }

    [Fact]
    public async Task OnlyTheFirstOfTwoCompletionsTakesEffect()
    {
        var owner = new RecordingOwner();
        var waiter = new QueueWaiter(owner, pair: 1, transmit: true);
        ValueTask wait = waiter.Begin();

        Assert.True(owner.Complete(waiter, byNotification: true));
        Assert.False(owner.Complete(waiter, byNotification: false));
        Assert.True(wait.IsCompletedSuccessfully);
        await wait;
        Assert.Equal([true], owner.Finished);
    }

    [Fact]
    public async Task ASecondWaitWhileOneIsPendingIsRefused()
    {
        var owner = new RecordingOwner();
        var waiter = new QueueWaiter(owner, pair: 0, transmit: false);
        ValueTask first = waiter.Begin();
        Assert.Throws<InvalidOperationException>(() => BeginAndForget(waiter));
        owner.Complete(waiter, byNotification: false);
        await first;
    }

    [Fact]
    public async Task CancellationCompletesTheWaitWithOperationCanceledAndTheNextWaitWorks()
    {
        var owner = new RecordingOwner();
        var waiter = new QueueWaiter(owner, pair: 0, transmit: false);
        using var cancellation = new CancellationTokenSource();

        ValueTask wait = waiter.Begin();
        waiter.Watch(cancellation.Token);
        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await wait);

        // The queue's notification was switched off again on the worker's side, and the source is idle.
        Assert.Equal([false], owner.Finished);
        Assert.False(waiter.IsWaiting);

        ValueTask next = waiter.Begin();
        Assert.True(owner.Complete(waiter, byNotification: true));
        await next;
        Assert.Equal([false, true], owner.Finished);
    }

    [Fact]
    public async Task AStaleValueTaskOfAnEarlierWaitIsRefused()
    {
        var owner = new RecordingOwner();
        var waiter = new QueueWaiter(owner, pair: 0, transmit: false);
        ValueTask first = waiter.Begin();
        owner.Complete(waiter, byNotification: false);
        await first;
        ValueTask second = waiter.Begin();

        // The first wait's token is one version behind: reading it again is refused, and the second wait is untouched.
        Assert.Throws<InvalidOperationException>(() => waiter.GetResult(Version(first)));
        Assert.True(waiter.IsWaiting);
        owner.Complete(waiter, byNotification: false);
        await second;
    }

    [Fact]
    public void WaitingAllocatesNothing()
    {
        var owner = new RecordingOwner { Record = false };
        var waiter = new QueueWaiter(owner, pair: 0, transmit: false);
        using var cancellation = new CancellationTokenSource();

        // Warm up: the first registration on a token source creates its registration list.
        RunOneWait(waiter, owner, cancellation.Token);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            RunOneWait(waiter, owner, cancellation.Token);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task TheContinuationNeverRunsOnTheCompletingThread()
    {
        var owner = new RecordingOwner();
        var waiter = new QueueWaiter(owner, pair: 0, transmit: false);
        ValueTask wait = waiter.Begin();
        int completingThread = 0;
        var completer = new Thread(() =>
        {
            completingThread = Environment.CurrentManagedThreadId;
            owner.Complete(waiter, byNotification: true);

            // Still running here: a continuation run inline would have to finish first.
            Thread.Sleep(50);
        });

        Task<int> continued = AwaitAndRecordThread(wait);
        completer.Start();
        int continuationThread = await continued;
        completer.Join();
        Assert.NotEqual(completingThread, continuationThread);
    }

    private static async Task<int> AwaitAndRecordThread(ValueTask wait)
    {
        await wait.ConfigureAwait(false);
        return Environment.CurrentManagedThreadId;
    }

    private static void RunOneWait(QueueWaiter waiter, RecordingOwner owner, CancellationToken token)
    {
        ValueTask wait = waiter.Begin();
        waiter.Watch(token);
        owner.Complete(waiter, byNotification: true);
        Collect(wait);
    }

    // Reads a wait that has completed (as an awaiter that found it completed does), without blocking.
    private static void Collect(ValueTask wait)
    {
        if (!wait.IsCompleted)
        {
            throw new InvalidOperationException("The wait was expected to be complete.");
        }

        wait.GetAwaiter().GetResult();
    }

    private static void BeginAndForget(QueueWaiter waiter)
    {
        ValueTask wait = waiter.Begin();
        Assert.Fail($"A second wait began: {wait}");
    }

    // The version a ValueTask over the waiter carries (the token ManualResetValueTaskSourceCore checks).
    private static short Version(ValueTask wait) =>
        (short)typeof(ValueTask).GetField("_token", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(wait)!;

    // Plays the device: completes waits when told, and records each awaited wait's "by notification".
    private sealed class RecordingOwner : IQueueWaiterOwner
    {
        public bool Record { get; init; } = true;

        public List<bool> Finished { get; } = [];

        public bool Complete(QueueWaiter waiter, bool byNotification) => waiter.TryComplete(byNotification, error: null);

        public void CompleteWaiter(QueueWaiter waiter, bool byNotification, Exception? error) => waiter.TryComplete(byNotification, error);

        public void FinishWait(QueueWaiter waiter, bool byNotification)
        {
            if (Record)
            {
                Finished.Add(byNotification);
            }
        }
    }
}
