using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>fcntl.h, unistd.h and sys/uio.h: opening, closing, plain and scatter-gather reads and writes.</summary>
    internal static unsafe partial class Unistd
    {
        internal const int O_RDWR = 0x2;
        internal const int O_RDONLY = 0x0;
        internal const int O_NONBLOCK = 0x800;
        internal const int O_CLOEXEC = 0x80000;

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        internal static partial int Close(int fd);

        [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
        internal static partial nint Read(SafeHandle fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        internal static partial nint Write(SafeHandle fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "readv", SetLastError = true)]
        internal static partial nint ReadVector(int fd, IoVec* vectors, int count);

        [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
        internal static partial nint WriteVector(int fd, IoVec* vectors, int count);

        /// <summary>struct iovec.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct IoVec
        {
            public void* Base;
            public nuint Length;
        }
    }
}
