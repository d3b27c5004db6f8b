using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sched.h: moving the calling thread into another network namespace, and pinning it to CPUs.</summary>
    internal static unsafe partial class Sched
    {
        internal const int CLONE_NEWNET = 0x40000000;

        [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
        internal static partial int SetNamespace(int fd, int namespaceType);

        /// <summary>sched_setaffinity(pid, size, mask); pid 0 is the calling thread.</summary>
        [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
        internal static partial int SetAffinity(int pid, nuint size, ulong* mask);

        /// <summary>Pins the calling thread to CPU <paramref name="cpu"/> (0 to 1023).</summary>
        internal static void PinCallingThread(int cpu)
        {
            // A cpu_set_t of 1024 bits, as glibc defines it.
            ulong* mask = stackalloc ulong[16];
            new Span<ulong>(mask, 16).Clear();
            mask[cpu / 64] = 1UL << (cpu % 64);
            // SAFETY: the mask is 128 bytes on this stack frame, and the kernel reads at most the size it is given.
            if (SetAffinity(0, 128, mask) != 0)
            {
                throw Failure($"pinning a pump thread to CPU {cpu}", LastErrno);
            }
        }
    }
}
