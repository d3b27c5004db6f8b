using System.Diagnostics;

namespace VirtioNet.VhostUser;

/// <summary>
/// The device's interrupt as vhost-user delivers it: the call eventfds of the started vrings (the backend writes one
/// after using buffers) and the socket (its hang-up is a configuration change: the link went down). Level-triggered
/// like a virtio line: an eventfd stays readable until <see cref="VhostUserTransport.ReadAndAcknowledgeInterrupt"/> reads it.
/// Waiting without a thread: <see cref="RequestCallback"/> puts the descriptors in the process's one epoll set
/// (<see cref="VhostUserInterruptDispatcher"/>) and its thread calls back.
/// </summary>
internal sealed class VhostUserInterruptLine : INotifyingInterruptLine
{
    // Longest single poll, so that cancellation is noticed without a wake-up descriptor.
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(50);

    private readonly VhostUserTransport _transport;

    // The callback armed, taken (exchanged for null) by whoever calls it: the dispatcher's thread or the armer.
    private IInterruptCallback? _callback;

    // This line's id in the dispatcher (0 until the first RequestCallback).
    private int _id;

    // The call set and the channel whose descriptors are in the dispatcher's set (compared by reference: the transport
    // makes new ones when queues start or the connection is made again).
    private EventFileDescriptor[]? _watchedCalls;

    private object? _watchedChannel;

    internal VhostUserInterruptLine(VhostUserTransport transport) => _transport = transport;

    /// <inheritdoc />
    public int Number => 0;

    /// <inheritdoc />
    public bool IsRaised => _transport.PollInterrupt(TimeSpan.Zero);

    /// <inheritdoc />
    public long RaiseCount => _transport.InterruptSignals;

    /// <inheritdoc />
    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(start);
            if (_transport.PollInterrupt(remaining < Slice ? remaining : Slice))
            {
                return true;
            }

            if (remaining <= TimeSpan.Zero)
            {
                return false;
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// The callback is stored before the line is looked at (an interlocked exchange, a full fence), and the dispatcher
    /// takes it after the backend's write: either the look sees the eventfd readable, or the dispatcher sees the callback.
    /// </remarks>
    public void RequestCallback(IInterruptCallback callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        WatchDescriptors();
        Interlocked.Exchange(ref _callback, callback);
        if (_transport.PollInterrupt(TimeSpan.Zero))
        {
            OnReady();
        }
    }

    /// <summary>The dispatcher saw one of this line's descriptors change (or the line was raised when armed).</summary>
    internal void OnReady() => Interlocked.Exchange(ref _callback, null)?.OnInterrupt();

    /// <summary>The transport is disposed: the dispatcher forgets the line.</summary>
    internal void Detach()
    {
        int id = Interlocked.Exchange(ref _id, 0);
        if (id != 0)
        {
            VhostUserInterruptDispatcher.Shared.Detach(id);
        }

        // A waiter armed on a transport going away learns it from the device (its next look fails).
        OnReady();
    }

    /// <inheritdoc />
    public override string ToString() => $"vhost-user call eventfds ({RaiseCount} signals)";

    // Puts the current call eventfds and socket in the dispatcher's set, when they are not there yet. Arming is the
    // queue worker's (one at a time per device, under the device's line rules), so this needs no lock of its own; two
    // armers racing only add the same descriptors twice, which the dispatcher takes as an update.
    private void WatchDescriptors()
    {
        EventFileDescriptor[] calls = _transport.CallDescriptors;
        VhostUserChannel channel = _transport.Channel;
        if (ReferenceEquals(calls, Volatile.Read(ref _watchedCalls)) && ReferenceEquals(channel, Volatile.Read(ref _watchedChannel)))
        {
            return;
        }

        VhostUserInterruptDispatcher dispatcher = VhostUserInterruptDispatcher.Shared;
        if (_id == 0)
        {
            Interlocked.CompareExchange(ref _id, dispatcher.Attach(this), 0);
        }

        foreach (EventFileDescriptor call in calls)
        {
            dispatcher.Watch(call.Handle, Interop.Epoll.EPOLLIN, _id);
        }

        if (!channel.IsBroken)
        {
            dispatcher.Watch(channel.Socket, Interop.Epoll.EPOLLRDHUP, _id);
        }

        Volatile.Write(ref _watchedCalls, calls);
        Volatile.Write(ref _watchedChannel, channel);
    }
}
