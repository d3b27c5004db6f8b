using System.Runtime.InteropServices;

namespace VirtioNet.Service;

internal static partial class Interop
{
    /// <summary>sched.h: moving the calling thread into another network namespace.</summary>
    internal static partial class Sched
    {
        internal const int CLONE_NEWNET = 0x40000000;

        [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
        internal static partial int SetNamespace(int fd, int namespaceType);
    }
}
