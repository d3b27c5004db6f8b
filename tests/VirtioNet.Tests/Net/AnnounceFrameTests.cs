using System.Buffers.Binary;
using System.Net;
using PacketDotNet;
using VirtioNet.Net.Control;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The frames a driver sends when the device asks it to announce itself (§5.1.6.5.4): the unsolicited neighbour
/// advertisement (RFC 4861 §7.2.6) read back by PacketDotNet, field by field, and its checksum verified independently.
/// </summary>
public sealed class AnnounceFrameTests
{
    private static readonly byte[] Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    [Fact]
    public void AnUnsolicitedNeighbourAdvertisementIsWhatRfc4861Describes()
    {
        IPAddress address = IPAddress.Parse("fd77::2");
        byte[] frame = new byte[UnsolicitedNeighbourAdvertisement.FrameLength + 10];
        Assert.Equal(UnsolicitedNeighbourAdvertisement.FrameLength, UnsolicitedNeighbourAdvertisement.Write(Mac, address, frame));

        var ethernet = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, frame[..UnsolicitedNeighbourAdvertisement.FrameLength]);
        Assert.Equal("333300000001", ethernet.DestinationHardwareAddress.ToString());
        Assert.Equal(Mac, ethernet.SourceHardwareAddress.GetAddressBytes());
        var ip = Assert.IsType<IPv6Packet>(ethernet.PayloadPacket);
        Assert.Equal(address, ip.SourceAddress);
        Assert.Equal(IPAddress.Parse("ff02::1"), ip.DestinationAddress);
        Assert.Equal(255, ip.HopLimit);
        Assert.Equal(ProtocolType.IcmpV6, ip.Protocol);
        var icmp = ip.Extract<IcmpV6Packet>();
        Assert.Equal(IcmpV6Type.NeighborAdvertisement, icmp.Type);
        Assert.Equal(0, icmp.Code);

        // Flags: Override set, Router and Solicited clear (an unsolicited advert, §7.2.6); then the target and the
        // target link-layer address option (type 2, one unit of 8 bytes, the MAC).
        byte[] body = frame[54..UnsolicitedNeighbourAdvertisement.FrameLength];
        Assert.Equal(0x20, body[4]);
        Assert.Equal(address, new IPAddress(body.AsSpan(8, 16)));
        Assert.Equal([2, 1, .. Mac], body[24..32]);

        // The checksum over the pseudo-header (RFC 8200 §8.1) sums to all ones with the field in place.
        byte[] source = ip.SourceAddress.GetAddressBytes();
        byte[] destination = ip.DestinationAddress.GetAddressBytes();
        uint sum = InternetChecksum.PseudoHeaderSum(source, destination, 58, body.Length);
        Assert.Equal(0xFFFF, InternetChecksum.Fold(InternetChecksum.Add(body, sum)));
        Assert.NotEqual(0, BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(2)));
    }

    [Fact]
    public void OnlyIpv6AddressesAndSixByteMacsAreAdvertised()
    {
        byte[] frame = new byte[UnsolicitedNeighbourAdvertisement.FrameLength];
        Assert.Throws<ArgumentException>(() => UnsolicitedNeighbourAdvertisement.Write(Mac, IPAddress.Parse("10.0.2.15"), frame));
        Assert.Throws<ArgumentException>(() => UnsolicitedNeighbourAdvertisement.Write(Mac.AsSpan(0, 5), IPAddress.IPv6Loopback, frame));
        Assert.Throws<ArgumentException>(() => UnsolicitedNeighbourAdvertisement.Write(Mac, IPAddress.IPv6Loopback, frame.AsSpan(1)));
    }

    [Fact]
    public void OnlyIpv4AddressesAndSixByteMacsAreAnnouncedByArpAndEachErrorNamesItsArgument()
    {
        byte[] frame = new byte[GratuitousArp.FrameLength];
        var family = Assert.Throws<ArgumentException>(() => GratuitousArp.Write(Mac, IPAddress.IPv6Loopback, frame));
        Assert.Equal("address", family.ParamName);
        Assert.StartsWith("Gratuitous ARP announces IPv4 addresses", family.Message, StringComparison.Ordinal);
        Assert.Equal("mac", Assert.Throws<ArgumentException>(() => GratuitousArp.Write(Mac.AsSpan(0, 5), IPAddress.Loopback, frame)).ParamName);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => GratuitousArp.Write(Mac, IPAddress.Loopback, frame.AsSpan(1))).ParamName);
        var v6 = Assert.Throws<ArgumentException>(() => UnsolicitedNeighbourAdvertisement.Write(Mac, IPAddress.Loopback, new byte[UnsolicitedNeighbourAdvertisement.FrameLength]));
        Assert.StartsWith("Neighbour advertisements announce IPv6 addresses", v6.Message, StringComparison.Ordinal);
    }
}
