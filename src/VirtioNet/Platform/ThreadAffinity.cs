using System.Runtime.InteropServices;

namespace VirtioNet.Platform;

/// <summary>
/// Pins the calling thread to one CPU, for a worker that owns a queue pair (a poll loop, a bench or service worker):
/// .NET has no per-thread affinity, so this asks the kernel directly with <c>sched_setaffinity</c> on the thread's own id,
/// leaving the rest of the process where it was. Linux only.
/// </summary>
/// <remarks>
/// Pin from the worker thread itself, before its loop starts: the kernel moves the thread at once and it stays on that
/// CPU until it exits or pins itself again. A thread-pool thread should not be pinned (it outlives the work and would
/// carry the pinning to whatever runs on it next).
/// </remarks>
public static partial class ThreadAffinity
{
    // CPUs a mask can name (the kernel's cpu_set_t default; larger systems need a larger mask).
    private const int MaxCpus = 1024;

    /// <summary>
    /// Pins the calling thread to <paramref name="cpu"/> (0-based, as <c>taskset -c</c> numbers them). Returns the
    /// thread's kernel id, by which <c>/proc/self/task/TID/status</c> shows the result (Cpus_allowed_list).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpu"/> is negative or past the largest CPU a mask names (1023).</exception>
    /// <exception cref="PlatformNotSupportedException">Not on Linux.</exception>
    /// <exception cref="InvalidOperationException">The kernel refused (the CPU is offline, or outside the process's cpuset).</exception>
    public static int PinCurrentThread(int cpu)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpu);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(cpu, MaxCpus);
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Thread affinity is set through sched_setaffinity, which is Linux's.");
        }

        ulong[] mask = new ulong[MaxCpus / 64];
        mask[cpu / 64] = 1UL << (cpu % 64);
        if (SchedSetAffinity(0, (nuint)(mask.Length * sizeof(ulong)), mask) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new InvalidOperationException($"sched_setaffinity to CPU {cpu} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}); the CPU may be offline or outside this process's allowed CPUs.");
        }

        return CurrentThreadId;
    }

    /// <summary>The calling thread's kernel id (gettid), as /proc/self/task names it. Linux only.</summary>
    /// <exception cref="PlatformNotSupportedException">Not on Linux.</exception>
    public static int CurrentThreadId =>
        OperatingSystem.IsLinux() ? GetTid() : throw new PlatformNotSupportedException("Kernel thread ids are read with gettid, which is Linux's.");

    // pid 0: the calling thread (sched_setaffinity(2) acts on a thread id, and 0 means the caller).
    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int pid, nuint cpuSetSize, [In] ulong[] mask);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
