using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// Turns the TAP's transmit checksum offload off from inside its namespace, as <c>ethtool -K TAP tx off</c> would
/// (ETHTOOL_STXCSUM through the SIOCETHTOOL ioctl; ethtool itself is not installed on these machines). Without it the
/// kernel loses TSO and SG on the TAP too (they need a checksum offload), so it hands QEMU MSS-sized segments with full
/// checksums instead of the GSO packets with partial checksums that the offloads QEMU asked for (TUNSETOFFLOAD) allow.
/// </summary>
internal static class TapTransmitChecksum
{
    private const uint SiocEthtool = 0x8946;
    private const uint EthtoolStxCsum = 0x17;
    private const uint EthtoolGtxCsum = 0x16;

    /// <summary>Turns the offload off and returns whether the kernel now reports it off. Call on the namespace's thread.</summary>
    public static bool TurnOff(string tapName)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        int fd = (int)socket.Handle;
        Ethtool(fd, tapName, EthtoolStxCsum, 0);
        return Ethtool(fd, tapName, EthtoolGtxCsum, 0) == 0;
    }

    // One ethtool_value command (struct { u32 cmd; u32 data; }) through a struct ifreq (name, then ifr_data at offset
    // 16) that points at it; returns data. Both live in unmanaged memory for the ioctl.
    private static uint Ethtool(int fd, string name, uint command, uint data)
    {
        nint value = Marshal.AllocHGlobal(8);
        nint request = Marshal.AllocHGlobal(40);
        try
        {
            Marshal.WriteInt32(value, 0, (int)command);
            Marshal.WriteInt32(value, 4, (int)data);
            Marshal.Copy(new byte[40], 0, request, 40);
            byte[] bytes = System.Text.Encoding.ASCII.GetBytes(name);
            Marshal.Copy(bytes, 0, request, Math.Min(bytes.Length, 15));
            Marshal.WriteIntPtr(request, 16, value);
            if (Ioctl(fd, SiocEthtool, request) != 0)
            {
                throw new InvalidOperationException($"SIOCETHTOOL 0x{command:x} on {name} failed: errno {Marshal.GetLastPInvokeError()}.");
            }

            return (uint)Marshal.ReadInt32(value, 4);
        }
        finally
        {
            Marshal.FreeHGlobal(request);
            Marshal.FreeHGlobal(value);
        }
    }

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(int fd, nuint request, nint argument);
}
