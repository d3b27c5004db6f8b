using System.Buffers.Binary;
using System.Collections.Concurrent;

namespace VirtioNet.VhostUser;

/// <summary>
/// The process's one thread for vhost-user interrupts: an epoll set holding every device's call eventfds and sockets,
/// edge-triggered, so one wait serves any number of devices and each backend write is reported once. On an event it calls
/// the owning <see cref="VhostUserInterruptLine"/>, which calls the driver's armed callback (that queues the real work to
/// the thread pool and returns): the thread never reads an eventfd, touches a ring or runs a caller's code.
/// </summary>
/// <remarks>
/// Descriptors are only ever added (or updated: EPOLL_CTL_MOD), never removed: the kernel drops a descriptor from the set
/// when it is closed, and a number reused by a new descriptor belongs to a new file, which whoever opened it adds.
/// Events carry the line's id, and an id whose line is gone is ignored.
/// </remarks>
internal sealed class VhostUserInterruptDispatcher
{
    // Events taken per epoll_wait.
    private const int MaxEvents = 64;

    private static readonly Lazy<VhostUserInterruptDispatcher> SharedInstance = new(() => new VhostUserInterruptDispatcher());

    // The epoll set.
    private readonly FileDescriptor _epoll;

    // Lines by id (the epoll data of their descriptors).
    private readonly ConcurrentDictionary<int, VhostUserInterruptLine> _lines = new();

    // The last id handed out.
    private int _lastId;

    // Events dispatched (for tests: proof that the epoll thread delivered).
    private long _events;

    private VhostUserInterruptDispatcher()
    {
        _epoll = Interop.Epoll.Create(Interop.Epoll.EPOLL_CLOEXEC);
        if (_epoll.IsInvalid)
        {
            VirtioException failure = Interop.Failure("epoll_create1 for the vhost-user interrupt dispatcher");
            _epoll.Dispose();
            throw failure;
        }

        // The one thread, for the life of the process (a background thread: it never keeps the process alive).
        var thread = new Thread(Run) { IsBackground = true, Name = "vhost-user interrupts" };
        thread.Start();
    }

    /// <summary>The process's dispatcher, started on first use.</summary>
    internal static VhostUserInterruptDispatcher Shared => SharedInstance.Value;

    /// <summary>Events the thread has dispatched since it started.</summary>
    internal long Events => Interlocked.Read(ref _events);

    /// <summary>Gives <paramref name="line"/> an id for its descriptors' events.</summary>
    internal int Attach(VhostUserInterruptLine line)
    {
        int id = Interlocked.Increment(ref _lastId);
        _lines[id] = line;
        return id;
    }

    /// <summary>Forgets a line (its transport is disposed; its descriptors are closed, so the kernel dropped them).</summary>
    internal void Detach(int id) => _lines.TryRemove(id, out _);

    /// <summary>Adds (or updates) <paramref name="fd"/> in the set, reporting <paramref name="events"/> for line <paramref name="id"/>.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> when the kernel refuses.</exception>
    internal unsafe void Watch(FileDescriptor fd, uint events, int id)
    {
        byte* epollEvent = stackalloc byte[16];
        var span = new Span<byte>(epollEvent, 16);
        span.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(span, events | Interop.Epoll.EPOLLET);
        BinaryPrimitives.WriteUInt64LittleEndian(span[Interop.Epoll.EventDataOffset..], (ulong)id);

        // SAFETY: epollEvent points at 16 bytes on this frame, at least sizeof(struct epoll_event) on every architecture.
        if (Interop.Epoll.Control(_epoll, Interop.Epoll.EPOLL_CTL_ADD, fd.Number, epollEvent) == 0)
        {
            return;
        }

        int errno = Interop.LastErrno;
        if (errno == Interop.Epoll.EEXIST && Interop.Epoll.Control(_epoll, Interop.Epoll.EPOLL_CTL_MOD, fd.Number, epollEvent) == 0)
        {
            return;
        }

        throw Interop.Failure($"epoll_ctl for descriptor {fd.Number}", errno == Interop.Epoll.EEXIST ? Interop.LastErrno : errno);
    }

    private unsafe void Run()
    {
        int size = Interop.Epoll.EventSize;
        byte[] buffer = new byte[MaxEvents * size];
        fixed (byte* events = buffer)
        {
            while (true)
            {
                // SAFETY: 'events' pins MaxEvents × EventSize bytes for the thread's life; the kernel writes at most that.
                int ready = Interop.Epoll.Wait(_epoll, events, MaxEvents, -1);
                if (ready < 0)
                {
                    if (Interop.LastErrno == Interop.Errno.EINTR)
                    {
                        continue;
                    }

                    // The set itself failed (it cannot while the process holds it): nothing more will be dispatched,
                    // and waiters fall back on their timeouts.
                    return;
                }

                for (int i = 0; i < ready; i++)
                {
                    int id = (int)BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan((i * size) + Interop.Epoll.EventDataOffset, sizeof(ulong)));
                    if (_lines.TryGetValue(id, out VhostUserInterruptLine? line))
                    {
                        Interlocked.Increment(ref _events);
                        line.OnReady();
                    }
                }
            }
        }
    }
}
