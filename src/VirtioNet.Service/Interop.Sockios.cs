using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>linux/sockios.h: the interface ioctls made on any socket of the interface's namespace.</summary>
    internal static unsafe partial class Sockios
    {
        // SIOCGIFMTU: struct ifreq in, ifr_mtu (an int in the union after the name) out.
        internal const uint SIOCGIFMTU = 0x8921;

        internal const int AF_INET = 2;
        internal const int SOCK_DGRAM = 2;

        /// <summary>struct ifreq with ifr_mtu in the union.</summary>
        [StructLayout(LayoutKind.Sequential, Size = 40)]
        internal struct MtuRequest
        {
            public fixed byte Name[Tun.IFNAMSIZ];
            public int Mtu;
        }
    }
}
