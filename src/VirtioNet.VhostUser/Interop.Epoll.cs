using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sys/epoll.h: one wait over many descriptors, for the process's interrupt dispatcher.</summary>
    internal static unsafe partial class Epoll
    {
        /// <summary>EPOLL_CLOEXEC (= O_CLOEXEC).</summary>
        internal const int EPOLL_CLOEXEC = 0x80000;

        internal const int EPOLL_CTL_ADD = 1;
        internal const int EPOLL_CTL_MOD = 3;

        internal const uint EPOLLIN = 0x001;
        internal const uint EPOLLRDHUP = 0x2000;

        /// <summary>EPOLLET: report a change once (each eventfd write, the socket's hang-up), not while it lasts.</summary>
        internal const uint EPOLLET = 1u << 31;

        /// <summary>EEXIST: the descriptor is already in the set (then EPOLL_CTL_MOD updates it).</summary>
        internal const int EEXIST = 17;

        /// <summary>
        /// sizeof(struct epoll_event): the kernel packs it on x86_64 (le32 events, then the 64-bit data at offset 4,
        /// 12 bytes); other architectures align the data (offset 8, 16 bytes).
        /// </summary>
        internal static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

        /// <summary>Offset of epoll_event.data in <see cref="EventSize"/> bytes.</summary>
        internal static readonly int EventDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

        [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
        internal static partial FileDescriptor Create(int flags);

        /// <summary>epoll_ctl; <paramref name="epollEvent"/> points at <see cref="EventSize"/> bytes.</summary>
        [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
        internal static partial int Control(SafeHandle epoll, int operation, int fd, byte* epollEvent);

        /// <summary>epoll_wait; <paramref name="events"/> holds <paramref name="maxEvents"/> × <see cref="EventSize"/> bytes.</summary>
        [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
        internal static partial int Wait(SafeHandle epoll, byte* events, int maxEvents, int timeoutMilliseconds);
    }
}
