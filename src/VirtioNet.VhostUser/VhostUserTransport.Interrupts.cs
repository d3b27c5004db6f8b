namespace VirtioNet.VhostUser;

/// <summary>The interrupt side: the call eventfds of the started vrings and the socket's hang-up, polled without the lock.</summary>
public sealed partial class VhostUserTransport
{
    /// <summary>
    /// Waits up to <paramref name="wait"/> for a call eventfd to become readable or the socket to hang up; true when one
    /// did or a configuration change is pending. Lock-free: the worker waits here while it owns the queues. The wait is
    /// ppoll's, to the microsecond (plus the kernel's timer slack): a paced sender waiting 80 µs for its next frame
    /// sleeps 80 µs, where poll's whole milliseconds would make it sleep a millisecond or spin.
    /// </summary>
    internal unsafe bool PollInterrupt(TimeSpan wait)
    {
        if (Volatile.Read(ref _configChangePending) != 0)
        {
            return true;
        }

        EventFileDescriptor[] calls = _calls;
        VhostUserChannel channel = _channel;
        int count = calls.Length + 1;
        Span<Interop.Poll.PollFd> fds = stackalloc Interop.Poll.PollFd[count];
        for (int i = 0; i < calls.Length; i++)
        {
            fds[i] = new Interop.Poll.PollFd { Fd = calls[i].Handle.Number, Events = Interop.Poll.POLLIN };
        }

        // Only hang-up is asked of the socket: replies are read under the lock by whoever sent the request.
        fds[calls.Length] = new Interop.Poll.PollFd { Fd = channel.IsBroken ? -1 : channel.Socket.Number, Events = Interop.Poll.POLLRDHUP };
        int ready;
        fixed (Interop.Poll.PollFd* p = fds)
        {
            // SAFETY: 'p' points at 'count' pollfds pinned on this frame. A descriptor closed concurrently by Dispose
            // reports POLLNVAL, which is ignored for eventfds below.
            Interop.Poll.Timespec timeout = Interop.Poll.Timespec.From(wait <= TimeSpan.Zero ? TimeSpan.Zero : wait);
            ready = Interop.Poll.PollDescriptors(p, (nuint)count, &timeout, null);
        }

        if (ready <= 0)
        {
            return false;
        }

        if ((fds[calls.Length].REvents & Interop.Poll.HangUpMask) != 0 && !channel.IsBroken)
        {
            channel.MarkLost("the connection was closed");
            OnBackendLost(channel);
            return true;
        }

        for (int i = 0; i < calls.Length; i++)
        {
            if ((fds[i].REvents & Interop.Poll.POLLIN) != 0)
            {
                return true;
            }
        }

        return false;
    }

    private void RebuildCallSet()
    {
        var calls = new List<EventFileDescriptor>();
        foreach (VhostUserQueue? queue in _queues)
        {
            if (queue is { IsStarted: true })
            {
                calls.Add(queue.Call);
            }
        }

        _calls = [.. calls];
    }
}
