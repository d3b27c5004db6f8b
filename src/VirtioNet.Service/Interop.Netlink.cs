using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>sys/socket.h and linux/netlink.h, linux/rtnetlink.h: a NETLINK_ROUTE socket and its messages.</summary>
    internal static unsafe partial class Netlink
    {
        internal const int AF_NETLINK = 16;
        internal const int SOCK_RAW = 3;
        internal const int SOCK_CLOEXEC = 0x80000;
        internal const int NETLINK_ROUTE = 0;
        internal const int SOL_SOCKET = 1;
        internal const int SO_RCVTIMEO = 20;

        // Message types (linux/rtnetlink.h) and nlmsghdr flags (linux/netlink.h).
        internal const ushort NLMSG_ERROR = 2;
        internal const ushort RTM_NEWLINK = 16;
        internal const ushort RTM_NEWADDR = 20;
        internal const ushort RTM_DELADDR = 21;
        internal const ushort RTM_NEWROUTE = 24;
        internal const ushort NLM_F_REQUEST = 0x1;
        internal const ushort NLM_F_ACK = 0x4;
        internal const ushort NLM_F_EXCL = 0x200;
        internal const ushort NLM_F_CREATE = 0x400;

        /// <summary>RTMGRP_LINK: the multicast group of link notifications (RTM_NEWLINK on every change).</summary>
        internal const uint RTMGRP_LINK = 1;

        /// <summary>RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR: address notifications (RTM_NEWADDR, RTM_DELADDR).</summary>
        internal const uint RTMGRP_IPV4_IFADDR = 0x10;
        internal const uint RTMGRP_IPV6_IFADDR = 0x100;

        // Attributes, and the values of the message bodies' fields.
        internal const ushort IFLA_ADDRESS = 1;
        internal const ushort IFLA_MTU = 4;
        internal const ushort IFA_ADDRESS = 1;
        internal const ushort IFA_LOCAL = 2;
        internal const ushort RTA_OIF = 4;
        internal const ushort RTA_GATEWAY = 5;
        internal const byte AF_INET = 2;
        internal const byte RT_TABLE_MAIN = 254;
        internal const byte RTPROT_DHCP = 16;
        internal const byte RT_SCOPE_UNIVERSE = 0;
        internal const byte RTN_UNICAST = 1;
        internal const uint IFF_UP = 0x1;
        internal const uint IFF_PROMISC = 0x100;
        internal const uint IFF_ALLMULTI = 0x200;

        [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
        internal static partial int Socket(int domain, int type, int protocol);

        [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
        internal static partial int Bind(int fd, SocketAddressNetlink* address, uint length);

        [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
        internal static partial nint Send(int fd, void* buffer, nuint length, int flags);

        [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
        internal static partial nint Receive(int fd, void* buffer, nuint length, int flags);

        [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
        internal static partial int SetSocketOption(int fd, int level, int name, void* value, uint length);

        /// <summary>struct sockaddr_nl.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct SocketAddressNetlink
        {
            public ushort Family;
            public ushort Pad;
            public uint Pid;
            public uint Groups;
        }

        /// <summary>struct timeval, for SO_RCVTIMEO.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct TimeValue
        {
            public long Seconds;
            public long Microseconds;
        }
    }
}
