using System.Runtime.InteropServices;

namespace VirtioNet.Service;

internal static partial class Interop
{
    /// <summary>poll.h: waiting on a descriptor with a timeout.</summary>
    internal static unsafe partial class Poll
    {
        internal const short POLLIN = 0x001;

        [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
        internal static partial int PollDescriptors(PollFd* fds, nuint count, int timeoutMilliseconds);

        /// <summary>struct pollfd.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct PollFd
        {
            public int Fd;
            public short Events;
            public short REvents;
        }
    }
}
