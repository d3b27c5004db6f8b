using System.Runtime.InteropServices;

namespace VirtioNet.Service;

/// <summary>The Linux system calls the service makes, one nested class per native surface (file per surface).</summary>
internal static partial class Interop
{
    /// <summary>errno values the service reacts to (asm-generic/errno-base.h, errno.h).</summary>
    internal static class Errno
    {
        internal const int EPERM = 1;
        internal const int ENOENT = 2;
        internal const int EINTR = 4;
        internal const int EIO = 5;
        internal const int EAGAIN = 11;
        internal const int ENOMEM = 12;
        internal const int EACCES = 13;
        internal const int EBUSY = 16;
        internal const int EEXIST = 17;
        internal const int ENODEV = 19;
        internal const int EINVAL = 22;
        internal const int ENOBUFS = 105;
    }

    /// <summary>The errno of the last system call made through a <c>SetLastError</c> import on this thread.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>The one place errno becomes an exception: "<paramref name="operation"/>: No such file or directory (errno 2)".</summary>
    internal static ServiceException Failure(string operation, int errno) =>
        new($"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
}
