using System.Runtime.InteropServices;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// A raw AF_PACKET socket bound to one interface of the calling thread's namespace: whole Ethernet frames out and in,
/// so tagged frames pass through a TAP without a VLAN device. With PACKET_VNET_HDR each frame in and out is preceded by
/// the 10-byte virtio_net_hdr, so GSO frames pass whole. Frames the interface sends are read too, unless
/// PACKET_IGNORE_OUTGOING is asked for.
/// </summary>
internal sealed class PacketSocket : IDisposable
{
    /// <summary>The virtio_net_hdr the kernel puts before each frame with PACKET_VNET_HDR (struct virtio_net_hdr, no num_buffers).</summary>
    public const int VnetHeaderLength = 10;

    private const int AfPacket = 17;
    private const int SockRaw = 3;
    private const ushort EthPAllBigEndian = 0x0300;
    private const int SolSocket = 1;
    private const int SoRcvTimeo = 20;
    private const int SolPacket = 263;
    private const int PacketVnetHdr = 15;
    private const int PacketIgnoreOutgoing = 23;
    private const byte PacketOutgoing = 4;

    private readonly int _fd;

    private PacketSocket(int fd) => _fd = fd;

    public static PacketSocket Open(string device, bool vnetHeader = false, bool outgoingToo = true)
    {
        int ifindex = (int)IfNameToIndex(device);
        if (ifindex == 0)
        {
            throw new InvalidOperationException($"{device} not found: errno {Marshal.GetLastPInvokeError()}.");
        }

        int fd = Socket(AfPacket, SockRaw, EthPAllBigEndian);
        if (fd < 0)
        {
            throw new InvalidOperationException($"socket(AF_PACKET) failed: errno {Marshal.GetLastPInvokeError()}.");
        }

        int one = 1;
        var address = new SockaddrLl { Family = AfPacket, Protocol = EthPAllBigEndian, IfIndex = ifindex };
        if ((vnetHeader && SetSockOpt(fd, SolPacket, PacketVnetHdr, ref one, sizeof(int)) != 0)
            || (!outgoingToo && SetSockOpt(fd, SolPacket, PacketIgnoreOutgoing, ref one, sizeof(int)) != 0)
            || Bind(fd, ref address, Marshal.SizeOf<SockaddrLl>()) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = Close(fd);
            throw new InvalidOperationException($"setting up the packet socket on {device} failed: errno {errno}.");
        }

        return new PacketSocket(fd);
    }

    /// <summary>Sends one frame, or throws.</summary>
    public void Send(byte[] frame)
    {
        if (!TrySend(frame, frame.Length))
        {
            throw new InvalidOperationException($"send on the packet socket failed: errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    /// <summary>Sends one frame (with PACKET_VNET_HDR, header and frame) (the first <paramref name="length"/> bytes of <paramref name="buffer"/>); false when the kernel refused it (counted by the caller as not forwarded).</summary>
    public bool TrySend(byte[] buffer, int length) => Send(_fd, buffer, length, 0) == length;

    /// <summary>Receives one frame (with PACKET_VNET_HDR, header and frame), or returns 0 when none came within <paramref name="timeout"/>.</summary>
    public int Receive(byte[] buffer, TimeSpan timeout) => Receive(buffer, timeout, out _);

    /// <summary>As <see cref="Receive(byte[], TimeSpan)"/>, saying whether the interface sent the frame (PACKET_OUTGOING) rather than received it.</summary>
    public int Receive(byte[] buffer, TimeSpan timeout, out bool outgoing)
    {
        var tv = new Timeval { Seconds = (long)timeout.TotalSeconds, Microseconds = timeout.Milliseconds * 1000L };
        _ = SetSockOpt(_fd, SolSocket, SoRcvTimeo, ref tv, Marshal.SizeOf<Timeval>());
        var from = default(SockaddrLl);
        int fromLength = Marshal.SizeOf<SockaddrLl>();
        nint n = RecvFrom(_fd, buffer, buffer.Length, 0, ref from, ref fromLength);
        outgoing = from.PacketType == PacketOutgoing;
        return n > 0 ? (int)n : 0;
    }

    public void Dispose() => _ = Close(_fd);

    [DllImport("libc", EntryPoint = "if_nametoindex", SetLastError = true)]
    private static extern uint IfNameToIndex([MarshalAs(UnmanagedType.LPStr)] string name);

    [DllImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static extern int Socket(int domain, int type, int protocol);

    [DllImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static extern int Bind(int fd, ref SockaddrLl address, int length);

    [DllImport("libc", EntryPoint = "send", SetLastError = true)]
    private static extern nint Send(int fd, byte[] buffer, nint length, int flags);

    [DllImport("libc", EntryPoint = "recvfrom", SetLastError = true)]
    private static extern nint RecvFrom(int fd, byte[] buffer, nint length, int flags, ref SockaddrLl from, ref int fromLength);

    [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static extern int SetSockOpt(int fd, int level, int name, ref Timeval value, int length);

    [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static extern int SetSockOpt(int fd, int level, int name, ref int value, int length);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);

    // struct sockaddr_ll (linux/if_packet.h): 20 bytes.
    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrLl
    {
        public ushort Family;
        public ushort Protocol;
        public int IfIndex;
        public ushort HardwareType;
        public byte PacketType;
        public byte AddressLength;
        public ulong Address;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timeval
    {
        public long Seconds;
        public long Microseconds;
    }
}
