namespace VirtioNet.Net;

/// <summary>What a <see cref="QueueWaiter"/> calls back into: the device that completes its waits and owns its queue.</summary>
internal interface IQueueWaiterOwner
{
    /// <summary>Completes a pending wait (any thread), keeping the owner's count of pending waits.</summary>
    void CompleteWaiter(QueueWaiter waiter, bool byNotification, Exception? error);

    /// <summary>A completed wait was awaited, on the worker's side of the queue: switch the queue's notification off again.</summary>
    void FinishWait(QueueWaiter waiter, bool byNotification);
}
