using System.Diagnostics;
using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

/// <summary>
/// One connection to a vhost-user backend: framed messages over a unix stream socket, descriptors beside them
/// (SCM_RIGHTS), replies read against a deadline. Once anything goes wrong (the peer closed, a reply was late or
/// malformed and the stream can no longer be trusted) the channel is broken for good and says why on every later use.
/// Not thread-safe: the transport serializes requests.
/// </summary>
internal sealed class VhostUserChannel : IDisposable
{
    // Descriptors accepted per received message; more are dropped by the kernel (MSG_CTRUNC). Replies carry none.
    private const int MaxReceivedDescriptors = 8;

    // Why the channel is unusable, or null while it is healthy.
    private volatile string? _brokenReason;

    private VhostUserChannel(FileDescriptor socket, string path)
    {
        Socket = socket;
        Path = path;
    }

    /// <summary>The socket path, for messages.</summary>
    internal string Path { get; }

    /// <summary>The connected socket (polled for hang-up by the interrupt line).</summary>
    internal FileDescriptor Socket { get; }

    /// <summary>"vhost-user backend at PATH", the subject of every message.</summary>
    internal string Peer => $"vhost-user backend at {Path}";

    /// <summary>True once the peer closed the connection or the stream became untrustworthy.</summary>
    internal bool IsBroken => _brokenReason is not null;

    /// <summary>
    /// Connects to a backend listening on <paramref name="path"/>. While the socket does not exist or refuses
    /// (a backend still starting, or restarting), retries every 50 ms until <paramref name="timeout"/> passes.
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/>: no backend there, or the kernel refused.</exception>
    internal static unsafe VhostUserChannel Connect(string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Span<byte> address = stackalloc byte[Interop.Socket.SockAddrUnLength];
        int addressLength = Interop.Socket.WriteUnixAddress(address, path);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            FileDescriptor socket = CreateSocket(path);
            int errno;
            fixed (byte* a = address)
            {
                // SAFETY: 'a' points at a filled sockaddr_un of addressLength bytes, pinned for the call.
                if (Interop.Socket.Connect(socket, a, (uint)addressLength) == 0)
                {
                    return new VhostUserChannel(socket, path);
                }

                errno = Interop.LastErrno;
            }

            socket.Dispose();
            bool retriable = errno is Interop.Errno.ENOENT or Interop.Errno.ECONNREFUSED or Interop.Errno.EINTR;
            if (retriable && clock.Elapsed < timeout)
            {
                Thread.Sleep(50);
                continue;
            }

            string waited = timeout > TimeSpan.Zero ? $" (waited {timeout.TotalSeconds:0.###} s)" : string.Empty;
            throw errno switch
            {
                Interop.Errno.ENOENT => new VirtioException(VirtioErrorReason.PlatformFailure, $"No vhost-user backend at {path}: the socket does not exist{waited}."),
                Interop.Errno.ECONNREFUSED => new VirtioException(VirtioErrorReason.PlatformFailure, $"No vhost-user backend at {path}: nothing listens on the socket{waited}."),
                _ => Interop.Failure($"connect to vhost-user backend at {path}", errno),
            };
        }
    }

    /// <summary>Wraps a socket a backend connected on (client mode).</summary>
    internal static VhostUserChannel FromAccepted(FileDescriptor socket, string path) => new(socket, path);

    /// <summary>A new unix stream socket, close-on-exec.</summary>
    internal static FileDescriptor CreateSocket(string path)
    {
        FileDescriptor socket = Interop.Socket.Create(Interop.Socket.AF_UNIX, Interop.Socket.SOCK_STREAM | Interop.Socket.SOCK_CLOEXEC, 0);
        if (socket.IsInvalid)
        {
            VirtioException failure = Interop.Failure($"socket for vhost-user at {path}");
            socket.Dispose();
            throw failure;
        }

        return socket;
    }

    /// <summary>Sends one message with <paramref name="descriptors"/> in its ancillary data.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> when the backend went away.</exception>
    internal unsafe void Send(ReadOnlySpan<byte> message, ReadOnlySpan<SafeHandle> descriptors, VhostUserRequest request)
    {
        ThrowIfBroken();
        int controlLength = descriptors.IsEmpty ? 0 : Interop.Socket.CMsgSpace(descriptors.Length * sizeof(int));
        Span<byte> control = stackalloc byte[Math.Max(controlLength, 1)];
        control.Clear();
        int added = 0;
        try
        {
            if (!descriptors.IsEmpty)
            {
                // One SCM_RIGHTS control message holding the descriptors in order (vhost-user.rst: order matches the regions).
                MemoryMarshal.Write(control, (nuint)Interop.Socket.CMsgLength(descriptors.Length * sizeof(int)));
                MemoryMarshal.Write(control[8..], Interop.Socket.SOL_SOCKET);
                MemoryMarshal.Write(control[12..], Interop.Socket.SCM_RIGHTS);
                for (int i = 0; i < descriptors.Length; i++)
                {
                    bool ok = false;
                    descriptors[i].DangerousAddRef(ref ok);
                    added++;
                    MemoryMarshal.Write(control[(Interop.Socket.CMsgHeaderLength + (i * sizeof(int)))..], (int)descriptors[i].DangerousGetHandle());
                }
            }

            int sent = 0;
            while (sent < message.Length)
            {
                fixed (byte* data = message)
                fixed (byte* c = control)
                {
                    var iov = new Interop.Socket.IoVec { Base = data + sent, Length = (nuint)(message.Length - sent) };
                    var header = new Interop.Socket.MsgHdr
                    {
                        Iov = &iov,
                        IovLength = 1,

                        // Descriptors travel with the first byte only.
                        Control = sent == 0 && controlLength > 0 ? c : null,
                        ControlLength = sent == 0 ? (nuint)controlLength : 0,
                    };

                    // SAFETY: iov, header and control live on this frame; data and c are pinned by 'fixed' for the call.
                    nint n = Interop.Socket.SendMessage(Socket, &header, Interop.Socket.MSG_NOSIGNAL);
                    if (n < 0)
                    {
                        int errno = Interop.LastErrno;
                        if (errno == Interop.Errno.EINTR)
                        {
                            continue;
                        }

                        if (errno is Interop.Errno.EPIPE or Interop.Errno.ECONNRESET)
                        {
                            throw Lost($"sending {VhostUserCodec.Name(request)}: the connection was closed");
                        }

                        throw Break(Interop.Failure($"sending {VhostUserCodec.Name(request)} to {Peer}", errno));
                    }

                    sent += (int)n;
                }
            }
        }
        finally
        {
            for (int i = 0; i < added; i++)
            {
                descriptors[i].DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Reads the reply to <paramref name="request"/> and returns its payload, after checking the header
    /// (<see cref="VhostUserCodec.ValidateReply"/>; <paramref name="expectedSize"/> -1 accepts any sane size).
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.Timeout"/> when no reply came in time; <see cref="VirtioErrorReason.PlatformFailure"/>
    /// when the backend went away or replied wrongly. The channel is broken afterwards either way.
    /// </exception>
    internal byte[] Receive(VhostUserRequest request, int expectedSize, TimeSpan timeout)
    {
        ThrowIfBroken();
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        Span<byte> headerBytes = stackalloc byte[VhostUserHeader.Length];
        ReadExactly(headerBytes, deadline, request, timeout);
        VhostUserHeader header = VhostUserCodec.DecodeHeader(headerBytes);
        try
        {
            VhostUserCodec.ValidateReply(header, request, expectedSize, Peer);
        }
        catch (VirtioException e)
        {
            throw Break(e);
        }

        byte[] payload = new byte[header.Size];
        ReadExactly(payload, deadline, request, timeout);
        return payload;
    }

    /// <summary>
    /// Without blocking: true when the peer has closed its end (and marks the channel broken). Data waiting
    /// (none is expected between requests) does not count as closed.
    /// </summary>
    internal unsafe bool CheckPeerClosed()
    {
        if (IsBroken)
        {
            return true;
        }

        var fd = new Interop.Poll.PollFd { Fd = Socket.Number, Events = Interop.Poll.POLLIN | Interop.Poll.POLLRDHUP };

        // SAFETY: one pollfd on this frame; the socket stays open while this channel is (Dispose is not concurrent with it).
        int ready = Interop.Poll.PollDescriptors(&fd, 1, 0);
        if (ready <= 0)
        {
            return false;
        }

        if ((fd.REvents & Interop.Poll.HangUpMask) != 0)
        {
            MarkLost("the connection was closed");
            return true;
        }

        byte probe;
        var iov = new Interop.Socket.IoVec { Base = &probe, Length = 1 };
        var header = new Interop.Socket.MsgHdr { Iov = &iov, IovLength = 1 };

        // SAFETY: probe, iov and header live on this frame; MSG_PEEK leaves the byte (if any) in the socket.
        nint n = Interop.Socket.ReceiveMessage(Socket, &header, Interop.Socket.MSG_PEEK | Interop.Socket.MSG_DONTWAIT);
        if (n == 0)
        {
            MarkLost("the connection was closed");
            return true;
        }

        return false;
    }

    /// <summary>Marks the channel broken because the peer is gone.</summary>
    internal void MarkLost(string why) => _brokenReason ??= $"{Peer} went away ({why})";

    /// <summary>Throws the exception every use of a broken channel gets.</summary>
    internal void ThrowIfBroken()
    {
        if (_brokenReason is { } reason)
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, reason + ".");
        }
    }

    /// <summary>Closes the socket; the backend sees the connection end and tears its side down.</summary>
    public void Dispose()
    {
        _brokenReason ??= $"the connection to {Peer} was closed by this driver";
        Socket.Dispose();
    }

    private unsafe void ReadExactly(Span<byte> buffer, long deadline, VhostUserRequest request, TimeSpan timeout)
    {
        Span<byte> control = stackalloc byte[Interop.Socket.CMsgSpace(MaxReceivedDescriptors * sizeof(int))];
        int got = 0;
        while (got < buffer.Length)
        {
            long remainingTicks = deadline - Stopwatch.GetTimestamp();
            int waitMs = remainingTicks <= 0 ? 0 : (int)Math.Min(int.MaxValue, (remainingTicks * 1000 / Stopwatch.Frequency) + 1);
            var pollFd = new Interop.Poll.PollFd { Fd = Socket.Number, Events = Interop.Poll.POLLIN };

            // SAFETY: one pollfd on this frame.
            int ready = Interop.Poll.PollDescriptors(&pollFd, 1, waitMs);
            if (ready < 0)
            {
                if (Interop.LastErrno == Interop.Errno.EINTR)
                {
                    continue;
                }

                throw Break(Interop.Failure($"poll on {Peer}"));
            }

            if (ready == 0)
            {
                throw Break(new VirtioException(
                    VirtioErrorReason.Timeout,
                    $"{Peer} did not answer {VhostUserCodec.Name(request)} within {timeout.TotalSeconds:0.###} s: not a vhost-user backend, or a stuck one."));
            }

            nint n;
            int flags;
            fixed (byte* data = buffer)
            fixed (byte* c = control)
            {
                var iov = new Interop.Socket.IoVec { Base = data + got, Length = (nuint)(buffer.Length - got) };
                var header = new Interop.Socket.MsgHdr { Iov = &iov, IovLength = 1, Control = c, ControlLength = (nuint)control.Length };

                // SAFETY: iov and header on this frame; data and c pinned by 'fixed' for the call; lengths are the spans'.
                n = Interop.Socket.ReceiveMessage(Socket, &header, Interop.Socket.MSG_CMSG_CLOEXEC | Interop.Socket.MSG_DONTWAIT);
                flags = header.Flags;
                if (n > 0)
                {
                    CloseReceivedDescriptors(control[..(int)header.ControlLength]);
                }
            }

            if (n == 0)
            {
                throw Lost($"it closed the connection instead of answering {VhostUserCodec.Name(request)}");
            }

            if (n < 0)
            {
                int errno = Interop.LastErrno;
                if (errno is Interop.Errno.EINTR or Interop.Errno.EAGAIN)
                {
                    continue;
                }

                if (errno == Interop.Errno.ECONNRESET)
                {
                    throw Lost($"the connection was reset while waiting for {VhostUserCodec.Name(request)}");
                }

                throw Break(Interop.Failure($"receiving {VhostUserCodec.Name(request)} from {Peer}", errno));
            }

            _ = flags;
            got += (int)n;
        }
    }

    // Replies carry no descriptors; any that arrive anyway are closed so they cannot leak.
    private static void CloseReceivedDescriptors(ReadOnlySpan<byte> control)
    {
        int offset = 0;
        while (offset + Interop.Socket.CMsgHeaderLength <= control.Length)
        {
            int length = (int)MemoryMarshal.Read<nuint>(control[offset..]);
            int level = MemoryMarshal.Read<int>(control[(offset + 8)..]);
            int type = MemoryMarshal.Read<int>(control[(offset + 12)..]);
            if (length < Interop.Socket.CMsgHeaderLength || offset + length > control.Length)
            {
                return;
            }

            if (level == Interop.Socket.SOL_SOCKET && type == Interop.Socket.SCM_RIGHTS)
            {
                for (int p = offset + Interop.Socket.CMsgHeaderLength; p + sizeof(int) <= offset + length; p += sizeof(int))
                {
                    _ = Interop.Unistd.Close(MemoryMarshal.Read<int>(control[p..]));
                }
            }

            offset += (length + 7) & ~7;
        }
    }

    private VirtioException Lost(string why)
    {
        MarkLost(why);
        return new VirtioException(VirtioErrorReason.PlatformFailure, _brokenReason + ".");
    }

    private VirtioException Break(VirtioException cause)
    {
        _brokenReason ??= $"the connection to {Peer} is unusable after an earlier failure: {cause.Message.TrimEnd('.')}";
        return cause;
    }
}
