using System.Runtime.InteropServices;

namespace VirtioNet;

/// <summary>
/// The Linux system calls this project makes, one nested class per native surface (file per surface). The surfaces
/// two assemblies use live once in src/Shared and are compiled into each; each assembly turns errno into its own
/// exception type in its Interop.Errors.cs.
/// </summary>
internal static partial class Interop
{
    /// <summary>errno values this project reacts to (asm-generic/errno-base.h, errno.h).</summary>
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
        internal const int EPIPE = 32;
        internal const int ECONNRESET = 104;
        internal const int ENOBUFS = 105;
        internal const int ECONNREFUSED = 111;
    }

    /// <summary>The errno of the last system call made through a <c>SetLastError</c> import on this thread.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();
}
