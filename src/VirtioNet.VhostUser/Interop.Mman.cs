using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

internal static partial class Interop
{
    /// <summary>sys/mman.h: mmap and munmap.</summary>
    internal static partial class Mman
    {
        internal const int PROT_READ = 0x1;
        internal const int PROT_WRITE = 0x2;
        internal const int MAP_SHARED = 0x01;

        /// <summary>(void*)-1, mmap's failure value.</summary>
        internal static readonly nint MAP_FAILED = -1;

        [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
        internal static partial nint Map(nint address, nuint length, int protection, int flags, SafeHandle fd, long offset);

        [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
        internal static partial int Unmap(nint address, nuint length);
    }
}
