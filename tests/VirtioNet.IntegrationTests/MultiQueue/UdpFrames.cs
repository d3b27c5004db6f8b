using System.Buffers.Binary;
using System.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.MultiQueue;

/// <summary>Builds and parses the Ethernet/IPv4/UDP frames the multi-queue tests exchange with the kernel.</summary>
internal static class UdpFrames
{
    private const int EthernetLength = 14;

    /// <summary>A UDP datagram in an IPv4 packet in an Ethernet frame (UDP checksum 0: none, allowed over IPv4).</summary>
    public static byte[] Build(ReadOnlySpan<byte> destinationMac, ReadOnlySpan<byte> sourceMac, IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        byte[] frame = new byte[EthernetLength + 20 + 8 + payload.Length];
        destinationMac.CopyTo(frame);
        sourceMac.CopyTo(frame.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        Span<byte> ip = frame.AsSpan(EthernetLength, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payload.Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);
        ip[8] = 64;
        ip[9] = 17;
        source.TryWriteBytes(ip[12..], out _);
        destination.TryWriteBytes(ip[16..], out _);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip));
        Span<byte> udp = frame.AsSpan(EthernetLength + 20);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payload.Length));
        payload.CopyTo(udp[8..]);
        return frame;
    }

    /// <summary>The addresses and ports of an IPv4/UDP frame, or false for anything else (ARP, IPv6, TCP ...).</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out IPAddress source, out IPAddress destination, out ushort sourcePort, out ushort destinationPort)
    {
        source = destination = IPAddress.None;
        sourcePort = destinationPort = 0;
        if (frame.Length < EthernetLength + 28 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800)
        {
            return false;
        }

        ReadOnlySpan<byte> ip = frame[EthernetLength..];
        int headerLength = (ip[0] & 0x0F) * 4;
        if (ip[9] != 17 || ip.Length < headerLength + 8)
        {
            return false;
        }

        source = new IPAddress(ip.Slice(12, 4));
        destination = new IPAddress(ip.Slice(16, 4));
        sourcePort = BinaryPrimitives.ReadUInt16BigEndian(ip[headerLength..]);
        destinationPort = BinaryPrimitives.ReadUInt16BigEndian(ip[(headerLength + 2)..]);
        return true;
    }
}
