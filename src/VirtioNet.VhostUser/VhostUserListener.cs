using System.Diagnostics;

namespace VirtioNet.VhostUser;

/// <summary>
/// The listening socket of client mode: the backend (DPDK vdev with <c>client=1</c>) connects to it, and connects again
/// after it restarts, so the listener lives as long as the transport. The socket file is removed on dispose.
/// </summary>
internal sealed class VhostUserListener : IDisposable
{
    private readonly FileDescriptor _socket;

    private VhostUserListener(FileDescriptor socket, string path)
    {
        _socket = socket;
        Path = path;
    }

    /// <summary>The socket path.</summary>
    internal string Path { get; }

    /// <summary>
    /// Binds and listens on <paramref name="path"/>, which must not exist yet or must be a stale socket: one whose
    /// listener is gone (a driver killed with SIGKILL cannot remove its socket file), which is removed and bound again.
    /// </summary>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.PlatformFailure"/> when something else is at the path, a process listens on the
    /// socket there, or the kernel refuses.
    /// </exception>
    internal static unsafe VhostUserListener Listen(string path)
    {
        Span<byte> address = stackalloc byte[Interop.Socket.SockAddrUnLength];
        int addressLength = Interop.Socket.WriteUnixAddress(address, path);
        if (File.Exists(path) || Directory.Exists(path))
        {
            RemoveStaleSocket(path, address[..addressLength]);
        }

        FileDescriptor socket = VhostUserChannel.CreateSocket(path);
        try
        {
            fixed (byte* a = address)
            {
                // SAFETY: 'a' points at a filled sockaddr_un of addressLength bytes, pinned for the call.
                if (Interop.Socket.Bind(socket, a, (uint)addressLength) != 0)
                {
                    throw Interop.Failure($"bind to {path} (listening for a vhost-user backend)");
                }
            }

            if (Interop.Socket.Listen(socket, 1) != 0)
            {
                throw Interop.Failure($"listen on {path}");
            }

            return new VhostUserListener(socket, path);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    // A socket nobody listens on is stale: connect(2) to it fails with ECONNREFUSED (the kernel's answer for a socket
    // file without a listener). Anything else at the path belongs to someone: a regular file or directory (connect would
    // say ECONNREFUSED for a regular file too, hence the type check first), a socket that accepts the probe's connection
    // (closed at once: the listener sees a peer that hangs up before saying anything), or one whose queue is full
    // (EAGAIN from the non-blocking probe). Two processes that find the same stale socket at the same moment can still
    // race (the later removal takes the earlier one's new socket away); one driver per socket path is the caller's rule.
    private static unsafe void RemoveStaleSocket(string path, ReadOnlySpan<byte> address)
    {
        if (!Interop.Stat.IsSocket(path))
        {
            throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"Cannot listen for a vhost-user backend at {path}: the path exists and is not a socket.");
        }

        int errno;
        using (FileDescriptor probe = Interop.Socket.Create(Interop.Socket.AF_UNIX, Interop.Socket.SOCK_STREAM | Interop.Socket.SOCK_CLOEXEC | Interop.Socket.SOCK_NONBLOCK, 0))
        {
            if (probe.IsInvalid)
            {
                throw Interop.Failure($"socket to probe {path}");
            }

            fixed (byte* a = address)
            {
                // SAFETY: 'a' points at a filled sockaddr_un of address.Length bytes, pinned for the call.
                errno = Interop.Socket.Connect(probe, a, (uint)address.Length) == 0 ? 0 : Interop.LastErrno;
            }
        }

        switch (errno)
        {
            case Interop.Errno.ECONNREFUSED:
                File.Delete(path);
                return;
            case Interop.Errno.ENOENT:
                // Removed meanwhile: the path is free.
                return;
            case 0 or Interop.Errno.EAGAIN:
                throw new VirtioException(
                    VirtioErrorReason.PlatformFailure,
                    $"Cannot listen for a vhost-user backend at {path}: another process listens on that socket (a driver still running?).");
            default:
                throw Interop.Failure($"probing the socket {path} for a listener", errno);
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the backend to connect.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.Timeout"/> when none did.</exception>
    internal unsafe VhostUserChannel Accept(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TimeSpan remaining = timeout - clock.Elapsed;

            // Slices of at most 100 ms so that cancellation is noticed.
            int waitMs = remaining <= TimeSpan.Zero ? 0 : (int)Math.Min(100, Math.Ceiling(remaining.TotalMilliseconds));
            var fd = new Interop.Poll.PollFd { Fd = (int)_socket.DangerousGetHandle(), Events = Interop.Poll.POLLIN };

            // SAFETY: one pollfd on this frame; the listener is not disposed while it accepts.
            int ready = Interop.Poll.PollDescriptors(&fd, 1, waitMs);
            if (ready < 0 && Interop.LastErrno != Interop.Errno.EINTR)
            {
                throw Interop.Failure($"poll on the listening socket {Path}");
            }

            if (ready > 0)
            {
                FileDescriptor accepted = Interop.Socket.Accept(_socket, 0, 0, Interop.Socket.SOCK_CLOEXEC);
                if (!accepted.IsInvalid)
                {
                    return VhostUserChannel.FromAccepted(accepted, Path);
                }

                int errno = Interop.LastErrno;
                accepted.Dispose();
                if (errno is not (Interop.Errno.EINTR or Interop.Errno.EAGAIN))
                {
                    throw Interop.Failure($"accept on {Path}", errno);
                }
            }

            if (remaining <= TimeSpan.Zero)
            {
                throw new VirtioException(
                    VirtioErrorReason.Timeout,
                    $"No vhost-user backend connected to {Path} within {timeout.TotalSeconds:0.###} s.");
            }
        }
    }

    /// <summary>Closes the socket and removes its file.</summary>
    public void Dispose()
    {
        _socket.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
            // Someone else removed or replaced it; nothing of ours is left there.
        }
    }
}
