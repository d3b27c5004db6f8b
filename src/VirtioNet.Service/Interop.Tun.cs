using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>linux/if_tun.h and linux/sockios.h: the TUN/TAP driver's ioctls and the interface ioctls used on a TAP.</summary>
    internal static unsafe partial class Tun
    {
        // _IOW('T', 202, int) and friends, as linux/if_tun.h defines them.
        internal const uint TUNSETIFF = 0x400454ca;
        internal const uint TUNSETPERSIST = 0x400454cb;
        internal const uint TUNSETOFFLOAD = 0x400454d0;
        internal const uint TUNSETVNETHDRSZ = 0x400454d8;
        internal const uint TUNSETCARRIER = 0x400454e2;

        // ifr_flags for TUNSETIFF.
        internal const short IFF_TAP = 0x0002;
        internal const short IFF_MULTI_QUEUE = 0x0100;
        internal const short IFF_NO_PI = 0x1000;
        internal const short IFF_VNET_HDR = 0x4000;
        internal const short IFF_TUN_EXCL = unchecked((short)0x8000);

        // TUNSETOFFLOAD bits: what the kernel may hand to this side.
        internal const uint TUN_F_CSUM = 0x01;
        internal const uint TUN_F_TSO4 = 0x02;
        internal const uint TUN_F_TSO6 = 0x04;
        internal const uint TUN_F_TSO_ECN = 0x08;
        internal const uint TUN_F_USO4 = 0x20;
        internal const uint TUN_F_USO6 = 0x40;

        /// <summary>IFNAMSIZ: interface names hold at most 15 bytes and a terminating zero.</summary>
        internal const int IFNAMSIZ = 16;

        [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
        internal static partial int IoctlPointer(int fd, nuint request, void* argument);

        [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
        internal static partial int IoctlValue(int fd, nuint request, nuint argument);

        [LibraryImport("libc", EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial uint NameToIndex(string name);

        /// <summary>struct ifreq for TUNSETIFF: the name, then ifr_flags in the union.</summary>
        [StructLayout(LayoutKind.Sequential, Size = 40)]
        internal struct InterfaceRequest
        {
            public fixed byte Name[IFNAMSIZ];
            public short Flags;
        }
    }
}
