using System.Buffers.Binary;
using System.Net;

namespace VirtioNet.Service;

/// <summary>
/// A NETLINK_ROUTE socket in one network namespace: sets an interface's MAC, MTU and up state (RTM_NEWLINK), adds
/// IPv4 addresses (RTM_NEWADDR) and routes (RTM_NEWROUTE), each request acknowledged or its error turned into an
/// exception. The requests are those <c>ip link set</c>, <c>ip addr add</c> and <c>ip route add</c> send.
/// </summary>
internal sealed unsafe class RouteNetlink : IDisposable
{
    // nlmsghdr (16 bytes), then the family header, then attributes, each 4-byte aligned. Ref: linux/netlink.h.
    private const int HeaderLength = 16;

    private readonly byte[] _buffer = new byte[1024];
    private int _fd;
    private uint _sequence;

    private RouteNetlink(int fd) => _fd = fd;

    /// <summary>Opens the socket in <paramref name="netns"/> (the caller's namespace when null).</summary>
    public static RouteNetlink Open(string? netns) => NamespaceThread.Run(netns, () =>
    {
        int fd = Interop.Netlink.Socket(Interop.Netlink.AF_NETLINK, Interop.Netlink.SOCK_RAW | Interop.Netlink.SOCK_CLOEXEC, Interop.Netlink.NETLINK_ROUTE);
        if (fd < 0)
        {
            throw Interop.Failure("opening a NETLINK_ROUTE socket", Interop.LastErrno);
        }

        // Replies come at once; the bound keeps a lost one from hanging the service.
        Interop.Netlink.TimeValue timeout = new() { Seconds = 5 };
        _ = Interop.Netlink.SetSocketOption(fd, Interop.Netlink.SOL_SOCKET, Interop.Netlink.SO_RCVTIMEO, &timeout, (uint)sizeof(Interop.Netlink.TimeValue));
        return new RouteNetlink(fd);
    });

    /// <summary>RTM_NEWLINK: sets the MAC address and MTU of interface <paramref name="index"/>, and brings it up or down.</summary>
    public void SetLink(uint index, ReadOnlySpan<byte> mac, int mtu, bool up)
    {
        Span<byte> m = Begin(Interop.Netlink.RTM_NEWLINK, 0);
        // struct ifinfomsg: family, pad, type, index, flags, change.
        int at = HeaderLength;
        m[at] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(m[(at + 4)..], (int)index);
        BinaryPrimitives.WriteUInt32LittleEndian(m[(at + 8)..], up ? Interop.Netlink.IFF_UP : 0);
        BinaryPrimitives.WriteUInt32LittleEndian(m[(at + 12)..], Interop.Netlink.IFF_UP);
        at += 16;
        if (!mac.IsEmpty)
        {
            at = Attribute(m, at, Interop.Netlink.IFLA_ADDRESS, mac);
        }

        if (mtu > 0)
        {
            Span<byte> value = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(value, mtu);
            at = Attribute(m, at, Interop.Netlink.IFLA_MTU, value);
        }

        Transact(at, "setting link");
    }

    /// <summary>RTM_NEWADDR: adds <paramref name="address"/>/<paramref name="prefixLength"/> to interface <paramref name="index"/>.</summary>
    public void AddAddress(uint index, IPAddress address, int prefixLength)
    {
        Span<byte> m = Begin(Interop.Netlink.RTM_NEWADDR, Interop.Netlink.NLM_F_CREATE | Interop.Netlink.NLM_F_EXCL);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        int at = HeaderLength;
        m[at] = Interop.Netlink.AF_INET;
        m[at + 1] = (byte)prefixLength;
        BinaryPrimitives.WriteInt32LittleEndian(m[(at + 4)..], (int)index);
        at += 8;
        byte[] bytes = address.GetAddressBytes();
        at = Attribute(m, at, Interop.Netlink.IFA_LOCAL, bytes);
        at = Attribute(m, at, Interop.Netlink.IFA_ADDRESS, bytes);
        Transact(at, $"adding address {address}/{prefixLength}");
    }

    /// <summary>RTM_NEWROUTE: a default route through <paramref name="gateway"/> on interface <paramref name="index"/>.</summary>
    public void AddDefaultRoute(uint index, IPAddress gateway)
    {
        Span<byte> m = Begin(Interop.Netlink.RTM_NEWROUTE, Interop.Netlink.NLM_F_CREATE | Interop.Netlink.NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        int at = HeaderLength;
        m[at] = Interop.Netlink.AF_INET;
        m[at + 4] = Interop.Netlink.RT_TABLE_MAIN;
        m[at + 5] = Interop.Netlink.RTPROT_DHCP;
        m[at + 6] = Interop.Netlink.RT_SCOPE_UNIVERSE;
        m[at + 7] = Interop.Netlink.RTN_UNICAST;
        at += 12;
        at = Attribute(m, at, Interop.Netlink.RTA_GATEWAY, gateway.GetAddressBytes());
        Span<byte> oif = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(oif, (int)index);
        at = Attribute(m, at, Interop.Netlink.RTA_OIF, oif);
        Transact(at, $"adding a default route via {gateway}");
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = Interop.Unistd.Close(fd);
        }
    }

    private Span<byte> Begin(ushort type, ushort flags)
    {
        Span<byte> m = _buffer;
        m.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(m[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(m[6..], (ushort)(Interop.Netlink.NLM_F_REQUEST | Interop.Netlink.NLM_F_ACK | flags));
        BinaryPrimitives.WriteUInt32LittleEndian(m[8..], ++_sequence);
        return m;
    }

    // struct rtattr: length (header included, unpadded), type, then the value padded to 4 bytes.
    private static int Attribute(Span<byte> m, int at, ushort type, ReadOnlySpan<byte> value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(m[at..], (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(m[(at + 2)..], type);
        value.CopyTo(m[(at + 4)..]);
        return at + 4 + ((value.Length + 3) & ~3);
    }

    // Sends the message and reads its acknowledgement: an NLMSG_ERROR whose error field is 0, or -errno.
    private void Transact(int length, string what)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer, (uint)length);
        // SAFETY: send reads length bytes of _buffer (length <= its size, checked by construction of the messages); recv
        // writes at most _buffer.Length.
        fixed (byte* p = _buffer)
        {
            if (Interop.Netlink.Send(_fd, p, (nuint)length, 0) != length)
            {
                throw Interop.Failure($"netlink: {what}", Interop.LastErrno);
            }

            while (true)
            {
                nint received = Interop.Netlink.Receive(_fd, p, (nuint)_buffer.Length, 0);
                if (received < 0)
                {
                    throw Interop.Failure($"netlink: {what} (waiting for the reply)", Interop.LastErrno);
                }

                if (received < HeaderLength + 4)
                {
                    continue;
                }

                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(4));
                uint sequence = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(8));
                if (type != Interop.Netlink.NLMSG_ERROR || sequence != _sequence)
                {
                    continue;
                }

                int error = BinaryPrimitives.ReadInt32LittleEndian(_buffer.AsSpan(HeaderLength));
                if (error != 0)
                {
                    throw Interop.Failure($"netlink: {what}", -error);
                }

                return;
            }
        }
    }
}
