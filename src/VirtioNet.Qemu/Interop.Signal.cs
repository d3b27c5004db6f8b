using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>signal.h: kill(2), to stop a detached QEMU that is not this process's child.</summary>
    internal static partial class Signal
    {
        internal const int SIGKILL = 9;
        internal const int SIGTERM = 15;

        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        internal static partial int Kill(int pid, int signal);
    }
}
