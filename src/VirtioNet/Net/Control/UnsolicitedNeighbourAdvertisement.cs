using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Net.Control;

/// <summary>
/// Builds the unsolicited neighbour advertisement a driver sends for each of its IPv6 addresses when the device asks it
/// to announce itself (VIRTIO_NET_S_ANNOUNCE; virtio v1.2 §5.1.6.5.4), the IPv6 counterpart of <see cref="GratuitousArp"/>
/// (RFC 4861 §7.2.6): from the address itself to all nodes (ff02::1, Ethernet 33:33:00:00:00:01), hop limit 255,
/// Override set and Solicited clear, with the target link-layer address option carrying the MAC.
/// </summary>
public static class UnsolicitedNeighbourAdvertisement
{
    /// <summary>The frame's length: Ethernet (14), IPv6 (40), the advertisement (24) and its one option (8).</summary>
    public const int FrameLength = 86;

    /// <summary>EtherType of IPv6.</summary>
    public const ushort EtherTypeIpv6 = 0x86DD;

    /// <summary>ICMPv6 type of a neighbour advertisement (RFC 4861 §4.4).</summary>
    public const byte IcmpTypeNeighbourAdvertisement = 136;

    private const int IcmpLength = 32;
    private const byte NextHeaderIcmpv6 = 58;
    private const byte OverrideFlag = 0x20;                 // RFC 4861 §4.4: R (0x80), S (0x40), O (0x20)
    private const byte OptionTargetLinkLayerAddress = 2;    // RFC 4861 §4.6.1

    private static readonly byte[] AllNodes = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];

    /// <summary>Writes the advertisement of <paramref name="address"/> by <paramref name="mac"/> into <paramref name="destination"/>; returns its length.</summary>
    /// <exception cref="ArgumentException">The MAC is not 6 bytes, the address is not IPv6, or the destination is shorter than <see cref="FrameLength"/>.</exception>
    public static int Write(ReadOnlySpan<byte> mac, IPAddress address, Span<byte> destination)
    {
        Span<byte> frame = Announcement.CheckAndSlice(mac, address, destination, AddressFamily.InterNetworkV6, FrameLength, "Neighbour advertisements announce");

        // Ethernet: the IPv6 multicast MAC of ff02::1 (RFC 2464 §7: 33:33 and the address's last 32 bits).
        frame[0] = 0x33;
        frame[1] = 0x33;
        AllNodes.AsSpan(12).CopyTo(frame[2..]);
        mac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], EtherTypeIpv6);

        Span<byte> ip = frame[14..54];
        ip[0] = 0x60;                                               // version 6, traffic class and flow label 0
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], IcmpLength); // payload length
        ip[6] = NextHeaderIcmpv6;
        ip[7] = 255;                                                // hop limit: RFC 4861 §7.1.2 drops anything else
        _ = address.TryWriteBytes(ip[8..24], out _);                // source: the announced address
        AllNodes.CopyTo(ip[24..40]);

        Span<byte> icmp = frame[54..];
        icmp[0] = IcmpTypeNeighbourAdvertisement;
        icmp[4] = OverrideFlag;
        _ = address.TryWriteBytes(icmp[8..24], out _);              // target address
        icmp[24] = OptionTargetLinkLayerAddress;
        icmp[25] = 1;                                               // option length in units of 8 bytes
        mac.CopyTo(icmp[26..]);

        ushort checksum = InternetChecksum.ComputeTransport(ip[8..24], ip[24..40], NextHeaderIcmpv6, icmp);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], checksum);
        return FrameLength;
    }
}
