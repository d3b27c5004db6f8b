using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

internal static partial class Interop
{
    /// <summary>unistd.h: close, read, write.</summary>
    internal static unsafe partial class Unistd
    {
        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        internal static partial int Close(int fd);

        [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
        internal static partial nint Read(SafeHandle fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        internal static partial nint Write(SafeHandle fd, void* buffer, nuint count);
    }
}
