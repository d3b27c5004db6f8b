using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sys/mman.h memfd_create and unistd.h ftruncate: anonymous memory with a descriptor another process can map.</summary>
    internal static partial class MemFd
    {
        /// <summary>MFD_CLOEXEC: not inherited by processes this one starts (the backend gets it only by SCM_RIGHTS).</summary>
        internal const uint MFD_CLOEXEC = 0x1;

        [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial FileDescriptor Create(string name, uint flags);

        [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
        internal static partial int Truncate(SafeHandle fd, long length);
    }
}
