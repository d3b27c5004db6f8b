using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// UDP frames over IPv4 and IPv6 for the USO tests, built byte by byte (PacketDotNet cannot be asked for a datagram
/// larger than the MTU without fixing its lengths), and the IPv6 side of the test namespace: a unique-local /64 on the
/// TAP without duplicate address detection, and a permanent neighbour entry for the driver's address.
/// </summary>
internal static class UsoFrames
{
    /// <summary>The kernel side's IPv6 address on the TAP.</summary>
    public static readonly IPAddress KernelAddress6 = IPAddress.Parse("fd00:77::1");

    /// <summary>The IPv6 address the driver's frames use.</summary>
    public static readonly IPAddress DriverAddress6 = IPAddress.Parse("fd00:77::2");

    /// <summary>The kernel's address of <paramref name="family"/>.</summary>
    public static IPAddress KernelAddress(AddressFamily family) =>
        family == AddressFamily.InterNetworkV6 ? KernelAddress6 : IPAddress.Parse(NetworkNamespace.KernelAddress);

    /// <summary>The driver's address of <paramref name="family"/>.</summary>
    public static IPAddress DriverAddress(AddressFamily family) =>
        family == AddressFamily.InterNetworkV6 ? DriverAddress6 : IPAddress.Parse(NetworkNamespace.DriverAddress);

    /// <summary>Gives the TAP (already moved in and up) the IPv6 address and the driver's address a neighbour entry.</summary>
    public static void AddIPv6(NetworkNamespace ns, ReadOnlySpan<byte> driverMac)
    {
        ns.IpInside($"addr add {KernelAddress6}/64 dev {ns.TapName} nodad");
        ns.IpInside($"neigh replace {DriverAddress6} lladdr {Mac(driverMac)} dev {ns.TapName} nud permanent");
    }

    /// <summary>
    /// A UDP frame from the driver to the kernel carrying <paramref name="payload"/> whole (it may be far larger than the
    /// MTU: the driver cuts it), lengths and the IPv4 header checksum filled, the UDP checksum left 0 for the driver.
    /// </summary>
    public static byte[] Build(ReadOnlySpan<byte> sourceMac, AddressFamily family, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        byte[] frame = new byte[FrameLength(family, payload.Length)];
        Write(frame, sourceMac, family, sourcePort, destinationPort, payload);
        return frame;
    }

    /// <summary>The length of a frame from <see cref="Write"/> with a payload of <paramref name="payloadLength"/> bytes.</summary>
    public static int FrameLength(AddressFamily family, int payloadLength) =>
        EthernetFrame.HeaderLength + (family == AddressFamily.InterNetworkV6 ? 40 : 20) + 8 + payloadLength;

    /// <summary>
    /// Writes the frame <see cref="Build"/> returns into <paramref name="frame"/> (a transmit buffer of the burst API, say)
    /// and returns its length, <see cref="FrameLength"/>.
    /// </summary>
    public static int Write(Span<byte> frame, ReadOnlySpan<byte> sourceMac, AddressFamily family, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        bool ipv6 = family == AddressFamily.InterNetworkV6;
        int ipHeader = ipv6 ? 40 : 20;
        int udpLength = 8 + payload.Length;
        Span<byte> f = frame[..FrameLength(family, payload.Length)];
        NetworkNamespace.KernelMac.CopyTo(f);
        sourceMac.CopyTo(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], ipv6 ? (ushort)0x86DD : (ushort)0x0800);
        Span<byte> ip = f[EthernetFrame.HeaderLength..];
        ip[..(ipHeader + 8)].Clear();
        byte[] source = DriverAddress(family).GetAddressBytes();
        byte[] destination = KernelAddress(family).GetAddressBytes();
        if (ipv6)
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)udpLength);
            ip[6] = InternetChecksum.ProtocolUdp;
            ip[7] = 64;
            source.CopyTo(ip[8..]);
            destination.CopyTo(ip[24..]);
        }
        else
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(ipHeader + udpLength));
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)Random.Shared.Next());
            ip[8] = 64;
            ip[9] = InternetChecksum.ProtocolUdp;
            source.CopyTo(ip[12..]);
            destination.CopyTo(ip[16..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip[..ipHeader]));
        }

        Span<byte> udp = ip[ipHeader..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        payload.CopyTo(udp[8..]);
        return f.Length;
    }

    /// <summary>A UDP socket of <paramref name="family"/> bound to the kernel's address and <paramref name="port"/>; call on the namespace's thread.</summary>
    public static Socket BindKernelSocket(AddressFamily family, ushort port)
    {
        var socket = new Socket(family, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(KernelAddress(family), port));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static string Mac(ReadOnlySpan<byte> mac) => string.Join(':', mac.ToArray().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
}
