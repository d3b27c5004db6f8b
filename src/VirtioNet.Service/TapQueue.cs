using System.Text;

namespace VirtioNet.Service;

/// <summary>
/// One queue of a <see cref="TapInterface"/>: a non-blocking descriptor on /dev/net/tun attached to the interface.
/// Reads and writes are scatter-gather (readv/writev) straight between the kernel and DMA memory, with the
/// virtio_net_hdr as the first vector; nothing is allocated per frame.
/// </summary>
internal sealed unsafe class TapQueue : IDisposable
{
    private int _fd;

    private TapQueue(int fd, int index)
    {
        _fd = fd;
        Index = index;
    }

    /// <summary>The queue's number, the same as its queue pair's.</summary>
    public int Index { get; }

    /// <summary>The descriptor (for poll).</summary>
    public int Descriptor => _fd;

    /// <summary>Opens /dev/net/tun and attaches it as a queue of <paramref name="name"/> (creating the interface for the first).</summary>
    public static TapQueue Open(string name, int index, bool exclusive, int headerLength)
    {
        int fd = Interop.Unistd.Open("/dev/net/tun", Interop.Unistd.O_RDWR | Interop.Unistd.O_NONBLOCK | Interop.Unistd.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Interop.LastErrno;
            throw errno is Interop.Errno.EPERM or Interop.Errno.EACCES
                ? new ServiceException("opening /dev/net/tun needs root (CAP_NET_ADMIN)", errno)
                : Interop.Failure("opening /dev/net/tun", errno);
        }

        var queue = new TapQueue(fd, index);
        try
        {
            // SAFETY: request is a stack struct of the size TUNSETIFF reads and writes (struct ifreq, 40 bytes); the name
            // fits (CheckName: at most 15 bytes) with the zero after it.
            Interop.Tun.InterfaceRequest request = default;
            byte[] bytes = Encoding.UTF8.GetBytes(name);
            for (int i = 0; i < bytes.Length; i++)
            {
                request.Name[i] = bytes[i];
            }

            request.Flags = (short)(Interop.Tun.IFF_TAP | Interop.Tun.IFF_NO_PI | Interop.Tun.IFF_VNET_HDR | Interop.Tun.IFF_MULTI_QUEUE | (exclusive ? Interop.Tun.IFF_TUN_EXCL : 0));
            if (Interop.Tun.IoctlPointer(fd, Interop.Tun.TUNSETIFF, &request) != 0)
            {
                int errno = Interop.LastErrno;
                throw errno switch
                {
                    Interop.Errno.EBUSY or Interop.Errno.EEXIST or Interop.Errno.EINVAL when exclusive =>
                        new ServiceException($"interface name '{name}' is already taken", errno),
                    Interop.Errno.EPERM or Interop.Errno.EACCES => new ServiceException($"creating TAP {name} needs root (CAP_NET_ADMIN)", errno),
                    _ => Interop.Failure($"attaching queue {index} to TAP {name} (TUNSETIFF)", errno),
                };
            }

            // The header length on every queue: the kernel keeps it per queue.
            int size = headerLength;
            queue.IoctlPointer(Interop.Tun.TUNSETVNETHDRSZ, &size, "TUNSETVNETHDRSZ");
            return queue;
        }
        catch
        {
            queue.Dispose();
            throw;
        }
    }

    /// <summary>Waits until a frame can be read or <paramref name="timeoutMilliseconds"/> pass; true when readable.</summary>
    public bool WaitReadable(int timeoutMilliseconds)
    {
        // SAFETY: one pollfd on the stack, count 1.
        Interop.Poll.PollFd poll = new() { Fd = _fd, Events = Interop.Poll.POLLIN };
        int ready = Interop.Poll.PollDescriptors(&poll, 1, timeoutMilliseconds);
        return ready > 0 && (poll.REvents & Interop.Poll.POLLIN) != 0;
    }

    /// <summary>
    /// Reads one frame with its header into the vectors (header first). Returns the bytes read including the header;
    /// 0 when the queue is empty; -errno on another failure.
    /// </summary>
    public int Read(Interop.Unistd.IoVec* vectors, int count)
    {
        nint read = Interop.Unistd.ReadVector(_fd, vectors, count);
        if (read >= 0)
        {
            return (int)read;
        }

        int errno = Interop.LastErrno;
        return errno == Interop.Errno.EAGAIN ? 0 : -errno;
    }

    /// <summary>Writes one frame with its header from the vectors (header first). Returns 0 or -errno.</summary>
    public int Write(Interop.Unistd.IoVec* vectors, int count)
    {
        nint written = Interop.Unistd.WriteVector(_fd, vectors, count);
        return written >= 0 ? 0 : -Interop.LastErrno;
    }

    internal void Ioctl(uint request, nuint value, string what)
    {
        if (Interop.Tun.IoctlValue(_fd, request, value) != 0)
        {
            throw Interop.Failure(what, Interop.LastErrno);
        }
    }

    internal void IoctlPointer(uint request, void* argument, string what)
    {
        if (Interop.Tun.IoctlPointer(_fd, request, argument) != 0)
        {
            throw Interop.Failure(what, Interop.LastErrno);
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = Interop.Unistd.Close(fd);
        }
    }
}
