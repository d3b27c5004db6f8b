using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace VirtioNet.Tests.Net;

/// <summary>
/// TCP and UDP frames over IPv4 and IPv6 built with PacketDotNet, whose checksum and length code is independent of the
/// driver's: the expected side of the offload tests.
/// </summary>
internal static class OffloadFrames
{
    public static readonly PhysicalAddress SourceMac = PhysicalAddress.Parse("02-00-00-00-00-01");
    public static readonly PhysicalAddress DestinationMac = PhysicalAddress.Parse("52-54-00-12-34-56");
    public static readonly IPAddress Source4 = IPAddress.Parse("10.77.0.2");
    public static readonly IPAddress Destination4 = IPAddress.Parse("10.77.0.1");
    public static readonly IPAddress Source6 = IPAddress.Parse("fd00:77::2");
    public static readonly IPAddress Destination6 = IPAddress.Parse("fd00:77::1");

    public static byte[] Payload(int length, int seed)
    {
        byte[] payload = new byte[length];
        new Random(seed).NextBytes(payload);
        return payload;
    }

    /// <summary>A TCP frame with correct checksums (IPv4 header and TCP), or with the TCP checksum zeroed.</summary>
    public static byte[] Tcp(bool ipv6, uint sequence, byte[] payload, ushort ipId = 0x1234, bool fin = false, bool psh = false, bool cwr = false, bool zeroChecksum = false)
    {
        var tcp = new TcpPacket(40000, 5001)
        {
            SequenceNumber = sequence,
            AcknowledgmentNumber = 77,
            Acknowledgment = true,
            Push = psh,
            Finished = fin,
            CongestionWindowReduced = cwr,
            WindowSize = 65535,
            PayloadData = payload,
        };
        return Finish(ipv6, tcp, ipId, zeroChecksum);
    }

    /// <summary>A UDP frame with correct checksums, or with the UDP checksum zeroed.</summary>
    public static byte[] Udp(bool ipv6, byte[] payload, ushort ipId = 0x1234, bool zeroChecksum = false)
    {
        var udp = new UdpPacket(40000, 5001) { PayloadData = payload };
        return Finish(ipv6, udp, ipId, zeroChecksum);
    }

    private static byte[] Finish(bool ipv6, TransportPacket transport, ushort ipId, bool zeroChecksum)
    {
        IPPacket ip = ipv6
            ? new IPv6Packet(Source6, Destination6) { HopLimit = 64 }
            : new IPv4Packet(Source4, Destination4) { Id = ipId, TimeToLive = 64 };
        ip.Protocol = transport is TcpPacket ? ProtocolType.Tcp : ProtocolType.Udp;
        ip.PayloadPacket = transport;
        var ethernet = new EthernetPacket(SourceMac, DestinationMac, ipv6 ? EthernetType.IPv6 : EthernetType.IPv4) { PayloadPacket = ip };
        ethernet.UpdateCalculatedValues();
        if (transport is TcpPacket tcp)
        {
            tcp.UpdateTcpChecksum();
        }
        else if (transport is UdpPacket udp)
        {
            udp.UpdateUdpChecksum();
        }

        if (ip is IPv4Packet v4)
        {
            v4.UpdateIPChecksum();
        }

        if (zeroChecksum)
        {
            transport.Checksum = 0;
        }

        return ethernet.Bytes;
    }

    /// <summary>True when PacketDotNet finds the frame's IPv4 header (if any) and transport checksums right.</summary>
    public static bool ChecksumsValid(byte[] frame)
    {
        var packet = Packet.ParsePacket(LinkLayers.Ethernet, frame);
        var ip = packet.Extract<IPPacket>();
        if (ip is IPv4Packet v4 && !v4.ValidIPChecksum)
        {
            return false;
        }

        return packet.Extract<TcpPacket>() is { } tcp ? tcp.ValidTcpChecksum : packet.Extract<UdpPacket>()!.ValidUdpChecksum;
    }
}
