using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using PacketDotNet.Utils;

namespace VirtioNet.Tests.Diagnostics;

/// <summary>Well-formed frames built with PacketDotNet, for tests to damage.</summary>
internal static class TestFrames
{
    public static byte[] EchoReply(PhysicalAddress to, ushort id, ushort sequence, byte[] data)
    {
        var bytes = new byte[8 + data.Length];
        data.CopyTo(bytes, 8);
        var icmp = new IcmpV4Packet(new ByteArraySegment(bytes)) { TypeCode = IcmpV4TypeCode.EchoReply, Id = id, Sequence = sequence };
        var ip = new IPv4Packet(SimulatedGateway.GatewayAddress, SimulatedGateway.GuestAddress) { TimeToLive = 64, PayloadPacket = icmp };
        var ethernet = new EthernetPacket(SimulatedGateway.GatewayMac, to, EthernetType.IPv4) { PayloadPacket = ip };
        icmp.UpdateIcmpChecksum();
        ip.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        return ethernet.Bytes;
    }

    public static byte[] Udp(PhysicalAddress to, ushort sourcePort, ushort destinationPort, byte[] data)
    {
        var udp = new UdpPacket(sourcePort, destinationPort) { PayloadData = data };
        var ip = new IPv4Packet(SimulatedGateway.GatewayAddress, IPAddress.Broadcast) { TimeToLive = 64, PayloadPacket = udp };
        var ethernet = new EthernetPacket(SimulatedGateway.GatewayMac, to, EthernetType.IPv4) { PayloadPacket = ip };
        ip.UpdateCalculatedValues();
        udp.UpdateCalculatedValues();
        udp.UpdateUdpChecksum();
        ip.UpdateIPChecksum();
        return ethernet.Bytes;
    }

    /// <summary>Offset of the IPv4 header in an untagged Ethernet frame.</summary>
    public const int IPv4Offset = 14;
}
