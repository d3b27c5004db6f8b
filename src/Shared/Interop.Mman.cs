using System.Runtime.InteropServices;
using VirtioNet.Core;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sys/mman.h: mmap and munmap, nothing else.</summary>
    /// <remarks>
    /// Why not <c>MemoryMappedFile</c>: it can map a /dev/shm file shared (CreateFromFile with FileShare.ReadWrite
    /// maps MAP_SHARED on Unix), but its views hand out a pointer adjusted by a page offset and hold three handle
    /// layers (file, mapping, view) whose lifetimes must be kept in step. Guest RAM and a vhost-user memory region are
    /// each one mapping that lives exactly as long as its owner, so one mmap call with MAP_SHARED spelled out is the
    /// plainer contract.
    /// </remarks>
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

        /// <summary>Maps <paramref name="length"/> bytes of the open file <paramref name="fd"/> read-write and shared.</summary>
        /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> and the errno when the kernel refuses.</exception>
        internal static nint MapShared(SafeHandle fd, ulong length, string what)
        {
            nint address = Map(0, (nuint)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            return address == MAP_FAILED ? throw Failure($"mmap of {what} ({length} bytes)") : address;
        }

        /// <summary>Removes a mapping made by <see cref="MapShared"/>.</summary>
        /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> when the kernel refuses.</exception>
        internal static void UnmapShared(nint address, ulong length)
        {
            if (Unmap(address, (nuint)length) != 0)
            {
                throw Failure($"munmap of 0x{address:x} ({length} bytes)");
            }
        }

        // mmap's and munmap's errno as an exception.
        private static VirtioException Failure(string operation)
        {
            int errno = Marshal.GetLastPInvokeError();
            return new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
        }
    }
}
