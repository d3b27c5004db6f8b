using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sys/eventfd.h: the 64-bit counters vhost-user kicks and calls travel through.</summary>
    internal static partial class EventFd
    {
        /// <summary>EFD_CLOEXEC (= O_CLOEXEC).</summary>
        internal const int EFD_CLOEXEC = 0x80000;

        /// <summary>EFD_NONBLOCK (= O_NONBLOCK): a read of a zero counter fails with EAGAIN instead of waiting.</summary>
        internal const int EFD_NONBLOCK = 0x800;

        [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
        internal static partial FileDescriptor Create(uint initialValue, int flags);
    }
}
