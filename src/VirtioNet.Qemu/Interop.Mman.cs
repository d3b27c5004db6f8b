using System.Runtime.InteropServices;
using VirtioNet.Core;

namespace VirtioNet.Qemu;

/// <summary>
/// The libc memory-mapping surface this project uses: mmap and munmap, nothing else.
/// </summary>
/// <remarks>
/// Why not <c>MemoryMappedFile</c>: it can map a /dev/shm file shared (CreateFromFile with FileShare.ReadWrite
/// maps MAP_SHARED on Unix), but its views hand out a pointer adjusted by a page offset and hold three handle
/// layers (file, mapping, view) whose lifetimes must be kept in step. Guest RAM is one mapping that lives exactly
/// as long as the machine, so one mmap call with MAP_SHARED spelled out is the plainer contract.
/// </remarks>
internal static partial class Interop
{
    /// <summary>sys/mman.h.</summary>
    internal static partial class Mman
    {
        internal const int PROT_READ = 0x1;
        internal const int PROT_WRITE = 0x2;
        internal const int MAP_SHARED = 0x01;

        /// <summary>(void*)-1, mmap's failure value.</summary>
        internal static readonly nint MAP_FAILED = -1;

        [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
        private static partial nint MMap(nint addr, nuint length, int prot, int flags, int fd, long offset);

        [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
        private static partial int MUnmap(nint addr, nuint length);

        /// <summary>Maps <paramref name="length"/> bytes of the open file <paramref name="fd"/> read-write and shared.</summary>
        /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> and the errno when the kernel refuses.</exception>
        internal static nint MapShared(SafeHandle fd, ulong length, string what)
        {
            bool added = false;
            try
            {
                fd.DangerousAddRef(ref added);
                nint address = MMap(0, (nuint)length, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd.DangerousGetHandle(), 0);
                if (address == MAP_FAILED)
                {
                    throw Failure($"mmap of {what} ({length} bytes)");
                }

                return address;
            }
            finally
            {
                if (added)
                {
                    fd.DangerousRelease();
                }
            }
        }

        /// <summary>Removes a mapping made by <see cref="MapShared"/>.</summary>
        internal static void Unmap(nint address, ulong length)
        {
            if (MUnmap(address, (nuint)length) != 0)
            {
                throw Failure($"munmap of 0x{address:x} ({length} bytes)");
            }
        }

        // The one place errno becomes an exception.
        private static VirtioException Failure(string operation)
        {
            int errno = Marshal.GetLastPInvokeError();
            return new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
        }
    }
}
