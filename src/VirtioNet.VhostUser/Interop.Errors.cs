using System.Runtime.InteropServices;
using VirtioNet.Core;

namespace VirtioNet.VhostUser;

/// <summary>The Linux system calls this project makes, one nested class per native surface (file per surface).</summary>
internal static partial class Interop
{
    /// <summary>errno values this project reacts to (asm-generic/errno-base.h, errno.h).</summary>
    internal static class Errno
    {
        internal const int ENOENT = 2;
        internal const int EINTR = 4;
        internal const int EAGAIN = 11;
        internal const int EPIPE = 32;
        internal const int ECONNRESET = 104;
        internal const int ECONNREFUSED = 111;
    }

    /// <summary>The errno of the last system call made through a <c>SetLastError</c> import on this thread.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>
    /// The one place errno becomes an exception: "<paramref name="operation"/> failed: No such file or directory (errno 2)."
    /// </summary>
    internal static VirtioException Failure(string operation) => Failure(operation, LastErrno);

    /// <summary>The exception for <paramref name="errno"/>, when the caller saved it before making other calls.</summary>
    internal static VirtioException Failure(string operation, int errno) =>
        new(VirtioErrorReason.PlatformFailure, $"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
}
