using System.Buffers.Binary;
using System.Runtime.InteropServices;
using VirtioNet.IntegrationTests.Tap;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A congestion point in userspace: it forwards whole frames, with their virtio-net headers, between two interfaces of
/// one namespace (QEMU's TAP on one side, a veth to the kernel's namespace on the other) and sets the IPv4 ECN field to
/// CE (Congestion Experienced, RFC 3168 §5) on every Nth ECT-marked TCP data frame going one way, as a router's
/// queue would. The kernel on these machines has no queueing discipline that marks (no <c>red</c>, no
/// <c>fq_codel ecn</c>), so without this relay no kernel TCP ever answers with ECE and CWR, and no segment ever carries
/// the GSO ECN bit (virtio v1.2 §5.1.6.2, VIRTIO_NET_HDR_GSO_ECN).
/// </summary>
/// <remarks>
/// Both sockets are AF_PACKET with PACKET_VNET_HDR, so a large segment crosses the relay as one frame with its GSO type
/// (ECN bit included) and a partial checksum stays partial; the relay counts the GSO frames with the ECN bit that pass
/// each way. Changing the ECN field changes only the IPv4 header's checksum, which the relay recomputes: the TCP
/// pseudo-header does not cover it.
/// </remarks>
internal sealed class CongestionMarkingRelay : IDisposable
{
    private readonly VnetPacketSocket _device;
    private readonly VnetPacketSocket _kernel;
    private readonly Thread[] _threads;
    private readonly int _markEvery;
    private volatile bool _stopping;
    private long _marked;
    private long _ecnFromDevice;
    private long _ecnFromKernel;
    private long _forwarded;

    private CongestionMarkingRelay(VnetPacketSocket device, VnetPacketSocket kernel, bool markTowardKernel, int markEvery)
    {
        _device = device;
        _kernel = kernel;
        _markEvery = markEvery;
        _threads =
        [
            new Thread(() => Forward(_device, _kernel, markTowardKernel, ref _ecnFromDevice)) { IsBackground = true, Name = "relay device->kernel" },
            new Thread(() => Forward(_kernel, _device, !markTowardKernel, ref _ecnFromKernel)) { IsBackground = true, Name = "relay kernel->device" },
        ];
        foreach (Thread thread in _threads)
        {
            thread.Start();
        }
    }

    /// <summary>Frames whose ECN field the relay set to CE.</summary>
    public long Marked => Interlocked.Read(ref _marked);

    /// <summary>GSO frames carrying the ECN bit that came from the device (QEMU's TAP) toward the kernel.</summary>
    public long EcnSegmentsFromDevice => Interlocked.Read(ref _ecnFromDevice);

    /// <summary>GSO frames carrying the ECN bit that came from the kernel (the veth) toward the device.</summary>
    public long EcnSegmentsFromKernel => Interlocked.Read(ref _ecnFromKernel);

    /// <summary>Frames forwarded either way.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>
    /// Opens both interfaces inside <paramref name="ns"/> and starts forwarding; frames toward the kernel side are marked
    /// when <paramref name="markTowardKernel"/>, otherwise frames toward the device.
    /// </summary>
    public static CongestionMarkingRelay Start(NetworkNamespace ns, string deviceSide, string kernelSide, bool markTowardKernel, int markEvery)
    {
        (VnetPacketSocket device, VnetPacketSocket kernel) = ns.Run(() =>
        {
            VnetPacketSocket d = VnetPacketSocket.Open(deviceSide);
            try
            {
                return (d, VnetPacketSocket.Open(kernelSide));
            }
            catch
            {
                d.Dispose();
                throw;
            }
        }).GetAwaiter().GetResult();
        return new CongestionMarkingRelay(device, kernel, markTowardKernel, markEvery);
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (Thread thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }

        _device.Dispose();
        _kernel.Dispose();
    }

    /// <summary>Whether <paramref name="vnetFrame"/> (virtio_net_hdr, then the frame) is a GSO frame with the ECN bit.</summary>
    public static bool IsEcnSegment(ReadOnlySpan<byte> vnetFrame) =>
        vnetFrame.Length > VnetPacketSocket.HeaderLength && (vnetFrame[1] & GsoEcn) != 0 && (vnetFrame[1] & ~GsoEcn) != 0;

    private const byte GsoEcn = 0x80;

    private void Forward(VnetPacketSocket from, VnetPacketSocket to, bool mark, ref long ecnSegments)
    {
        byte[] buffer = new byte[VnetPacketSocket.HeaderLength + 65_600];
        long dataFrames = 0;
        while (!_stopping)
        {
            int n = from.Receive(buffer, TimeSpan.FromMilliseconds(200));
            if (n <= VnetPacketSocket.HeaderLength)
            {
                continue;
            }

            Span<byte> frame = buffer.AsSpan(0, n);
            if (IsEcnSegment(frame))
            {
                Interlocked.Increment(ref ecnSegments);
            }

            // DATA_VALID (flag 2) describes a received frame; on transmit the kernel wants only NEEDS_CSUM.
            frame[0] &= 0x01;
            if (mark && IsTcpData(frame[VnetPacketSocket.HeaderLength..], out int ip) && ++dataFrames % _markEvery == 0 && MarkCongestion(frame[(VnetPacketSocket.HeaderLength + ip)..]))
            {
                Interlocked.Increment(ref _marked);
            }

            if (to.TrySend(buffer, n))
            {
                Interlocked.Increment(ref _forwarded);
            }
        }
    }

    // An untagged IPv4 TCP frame with payload; ip is where its IPv4 header starts.
    private static bool IsTcpData(ReadOnlySpan<byte> frame, out int ip)
    {
        ip = 14;
        if (frame.Length < ip + 40 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800 || frame[ip] >> 4 != 4 || frame[ip + 9] != 6)
        {
            return false;
        }

        int ihl = (frame[ip] & 0x0F) * 4;
        if (ihl < 20 || frame.Length < ip + ihl + 20)
        {
            return false;
        }

        int tcpHeader = (frame[ip + ihl + 12] >> 4) * 4;
        return frame.Length > ip + ihl + tcpHeader;
    }

    // ECT(0) or ECT(1) becomes CE; the header checksum is computed again over the header's own length.
    private static bool MarkCongestion(Span<byte> ipHeader)
    {
        int ecn = ipHeader[1] & 0x03;
        if (ecn is 0 or 3)
        {
            return false;
        }

        ipHeader[1] |= 0x03;
        int ihl = (ipHeader[0] & 0x0F) * 4;
        ipHeader[10] = 0;
        ipHeader[11] = 0;
        uint sum = 0;
        for (int i = 0; i < ihl; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(ipHeader[i..]);
        }

        while (sum > 0xFFFF)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        BinaryPrimitives.WriteUInt16BigEndian(ipHeader[10..], (ushort)~sum);
        return true;
    }
}

/// <summary>
/// A raw AF_PACKET socket bound to one interface of the calling thread's namespace, with PACKET_VNET_HDR: each frame in
/// and out is preceded by the 10-byte virtio_net_hdr, so GSO frames pass whole. Frames the interface sends are not read
/// back (PACKET_IGNORE_OUTGOING) unless asked for, to watch both ways.
/// </summary>
internal sealed class VnetPacketSocket : IDisposable
{
    /// <summary>The virtio_net_hdr the kernel puts before each frame (struct virtio_net_hdr, no num_buffers).</summary>
    public const int HeaderLength = 10;

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

    private VnetPacketSocket(int fd) => _fd = fd;

    public static VnetPacketSocket Open(string device, bool outgoingToo = false)
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
        if (SetSockOpt(fd, SolPacket, PacketVnetHdr, ref one, sizeof(int)) != 0
            || (!outgoingToo && SetSockOpt(fd, SolPacket, PacketIgnoreOutgoing, ref one, sizeof(int)) != 0)
            || Bind(fd, ref address, Marshal.SizeOf<SockaddrLl>()) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = Close(fd);
            throw new InvalidOperationException($"setting up the packet socket on {device} failed: errno {errno}.");
        }

        return new VnetPacketSocket(fd);
    }

    /// <summary>Sends one header-and-frame (the first <paramref name="length"/> bytes of <paramref name="buffer"/>); false when the kernel refused it (counted by the caller as not forwarded).</summary>
    public bool TrySend(byte[] buffer, int length) => Send(_fd, buffer, length, 0) == length;

    /// <summary>Receives one header-and-frame, or returns 0 when none came within <paramref name="timeout"/>.</summary>
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
