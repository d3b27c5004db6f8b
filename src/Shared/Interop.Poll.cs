using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>poll.h: waiting on one or several descriptors with a timeout.</summary>
    internal static unsafe partial class Poll
    {
        internal const short POLLIN = 0x001;
        internal const short POLLERR = 0x008;
        internal const short POLLHUP = 0x010;
        internal const short POLLNVAL = 0x020;

        /// <summary>POLLRDHUP: the peer closed its end of a stream socket.</summary>
        internal const short POLLRDHUP = 0x2000;

        /// <summary>Any of these in revents means the descriptor's peer is gone or the descriptor is unusable.</summary>
        internal const short HangUpMask = POLLERR | POLLHUP | POLLNVAL | POLLRDHUP;

        [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
        internal static partial int PollDescriptors(PollFd* fds, nuint count, int timeoutMilliseconds);

        /// <summary>ppoll with no signal mask: as poll, with a timeout in nanoseconds (poll's is whole milliseconds).</summary>
        [LibraryImport("libc", EntryPoint = "ppoll", SetLastError = true)]
        internal static partial int PollDescriptors(PollFd* fds, nuint count, Timespec* timeout, void* signalMask);

        /// <summary>struct timespec (64-bit Linux).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct Timespec
        {
            public long Seconds;
            public long Nanoseconds;

            public static Timespec From(TimeSpan span) =>
                new() { Seconds = span.Ticks / TimeSpan.TicksPerSecond, Nanoseconds = span.Ticks % TimeSpan.TicksPerSecond * 100 };
        }

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
