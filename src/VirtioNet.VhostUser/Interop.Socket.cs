using System.Runtime.InteropServices;
using System.Text;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sys/socket.h and sys/un.h: unix stream sockets with descriptor passing (SCM_RIGHTS). LP64 layouts.</summary>
    internal static unsafe partial class Socket
    {
        internal const int AF_UNIX = 1;
        internal const int SOCK_STREAM = 1;
        internal const int SOCK_CLOEXEC = 0x80000;

        /// <summary>SOCK_NONBLOCK: connect returns at once (EAGAIN when a listener's queue is full) instead of waiting.</summary>
        internal const int SOCK_NONBLOCK = 0x800;
        internal const int SOL_SOCKET = 1;
        internal const int SCM_RIGHTS = 1;

        /// <summary>MSG_PEEK: look at pending data without consuming it.</summary>
        internal const int MSG_PEEK = 0x2;

        /// <summary>MSG_CTRUNC in msg_flags: ancillary data did not fit (descriptors were dropped by the kernel).</summary>
        internal const int MSG_CTRUNC = 0x8;

        /// <summary>MSG_DONTWAIT: this call only does not block.</summary>
        internal const int MSG_DONTWAIT = 0x40;

        /// <summary>MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.</summary>
        internal const int MSG_NOSIGNAL = 0x4000;

        /// <summary>MSG_CMSG_CLOEXEC: descriptors received are close-on-exec.</summary>
        internal const int MSG_CMSG_CLOEXEC = 0x40000000;

        /// <summary>sizeof(sun_path): the longest socket path, including its terminating NUL.</summary>
        internal const int UnixPathCapacity = 108;

        /// <summary>sizeof(struct sockaddr_un).</summary>
        internal const int SockAddrUnLength = 2 + UnixPathCapacity;

        /// <summary>sizeof(struct cmsghdr) on LP64: the data of a control message starts here.</summary>
        internal const int CMsgHeaderLength = 16;

        [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
        internal static partial FileDescriptor Create(int domain, int type, int protocol);

        [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
        internal static partial int Connect(SafeHandle socket, byte* address, uint addressLength);

        [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
        internal static partial int Bind(SafeHandle socket, byte* address, uint addressLength);

        [LibraryImport("libc", EntryPoint = "listen", SetLastError = true)]
        internal static partial int Listen(SafeHandle socket, int backlog);

        [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
        internal static partial FileDescriptor Accept(SafeHandle socket, nint address, nint addressLength, int flags);

        [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
        internal static partial nint SendMessage(SafeHandle socket, MsgHdr* message, int flags);

        [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
        internal static partial nint ReceiveMessage(SafeHandle socket, MsgHdr* message, int flags);

        /// <summary>CMSG_SPACE(n): a control message with <paramref name="dataLength"/> bytes, padded to 8.</summary>
        internal static int CMsgSpace(int dataLength) => CMsgHeaderLength + ((dataLength + 7) & ~7);

        /// <summary>CMSG_LEN(n).</summary>
        internal static int CMsgLength(int dataLength) => CMsgHeaderLength + dataLength;

        /// <summary>Fills a struct sockaddr_un for <paramref name="path"/>; returns its length.</summary>
        /// <exception cref="ArgumentException">When the path does not fit in sun_path.</exception>
        internal static int WriteUnixAddress(Span<byte> destination, string path)
        {
            int length = Encoding.UTF8.GetByteCount(path);
            if (length == 0 || length >= UnixPathCapacity)
            {
                throw new ArgumentException($"A unix socket path must be 1 to {UnixPathCapacity - 1} bytes; \"{path}\" has {length}.", nameof(path));
            }

            destination[..SockAddrUnLength].Clear();
            BitConverter.TryWriteBytes(destination, (ushort)AF_UNIX);
            Encoding.UTF8.GetBytes(path, destination[2..]);
            return 2 + length + 1;
        }

        /// <summary>struct iovec.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct IoVec
        {
            public void* Base;
            public nuint Length;
        }

        /// <summary>struct msghdr (LP64: 56 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct MsgHdr
        {
            public void* Name;
            public uint NameLength;
            public IoVec* Iov;
            public nuint IovLength;
            public void* Control;
            public nuint ControlLength;
            public int Flags;
        }
    }
}
