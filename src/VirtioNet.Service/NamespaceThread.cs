namespace VirtioNet.Service;

/// <summary>
/// Runs work inside a named network namespace (<c>/run/netns/NAME</c>, as <c>ip netns add</c> makes them) on a thread of
/// its own. A TAP, a netlink socket or any socket belongs to the namespace of the thread that creates it and keeps
/// belonging to it, so everything the service needs inside the namespace is created here once, and then used from any
/// thread; the process's other threads (QEMU's sockets, vhost-user) stay where they were.
/// </summary>
internal static class NamespaceThread
{
    /// <summary>The directory <c>ip netns</c> keeps its namespaces in.</summary>
    public const string Directory = "/run/netns";

    /// <summary>Whether the named namespace exists.</summary>
    public static bool Exists(string name) => File.Exists(Path.Combine(Directory, name));

    /// <summary>Runs <paramref name="work"/> in <paramref name="netns"/> (the caller's own namespace when null) and returns its result or rethrows its exception.</summary>
    public static T Run<T>(string? netns, Func<T> work)
    {
        if (netns is null)
        {
            return work();
        }

        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                Enter(netns);
                result = work();
            }
#pragma warning disable CA1031 // Carried to the caller's thread and rethrown there.
            catch (Exception e)
#pragma warning restore CA1031
            {
                failure = e;
            }
        })
        {
            IsBackground = true,
            Name = $"netns {netns}",
        };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return result;
    }

    /// <summary>Moves the calling thread into the named namespace (setns affects that thread only); for threads that live there.</summary>
    public static void Enter(string netns)
    {
        string path = Path.Combine(Directory, netns);
        int fd = Interop.Unistd.Open(path, Interop.Unistd.O_RDONLY | Interop.Unistd.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Interop.LastErrno;
            throw errno == Interop.Errno.ENOENT
                ? new ServiceException($"network namespace '{netns}' does not exist (no {path}; create it with 'ip netns add {netns}')", errno)
                : Interop.Failure($"opening network namespace {path}", errno);
        }

        try
        {
            if (Interop.Sched.SetNamespace(fd, Interop.Sched.CLONE_NEWNET) != 0)
            {
                throw Interop.Failure($"entering network namespace '{netns}'", Interop.LastErrno);
            }
        }
        finally
        {
            _ = Interop.Unistd.Close(fd);
        }
    }
}
