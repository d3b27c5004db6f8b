using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace VirtioNet.Net.Control;

/// <summary>
/// Builds the gratuitous ARP a driver sends for each of its IPv4 addresses when the device asks it to announce itself
/// (VIRTIO_NET_S_ANNOUNCE, after a migration or a link change): a broadcast ARP request whose sender and target protocol
/// address are both the announced address (RFC 5227 §3, the form Linux sends). Ref: virtio v1.2 §5.1.6.5.4.
/// </summary>
public static class GratuitousArp
{
    /// <summary>The frame's length: the 42 bytes of Ethernet and ARP, padded to the 60-byte Ethernet minimum.</summary>
    public const int FrameLength = 60;

    /// <summary>EtherType of ARP.</summary>
    public const ushort EtherTypeArp = 0x0806;

    /// <summary>Writes the announcement of <paramref name="address"/> by <paramref name="mac"/> into <paramref name="destination"/>; returns its length.</summary>
    /// <exception cref="ArgumentException">The MAC is not 6 bytes, the address is not IPv4, or the destination is shorter than <see cref="FrameLength"/>.</exception>
    public static int Write(ReadOnlySpan<byte> mac, IPAddress address, Span<byte> destination)
    {
        Span<byte> frame = Announcement.CheckAndSlice(mac, address, destination, AddressFamily.InterNetwork, FrameLength, "Gratuitous ARP announces");
        frame[..6].Fill(0xFF);
        mac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], EtherTypeArp);

        Span<byte> arp = frame[14..];
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1);            // htype: Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(arp[2..], 0x0800);  // ptype: IPv4
        arp[4] = 6;                                                 // hlen
        arp[5] = 4;                                                 // plen
        BinaryPrimitives.WriteUInt16BigEndian(arp[6..], 1);        // oper: request
        mac.CopyTo(arp[8..]);                                       // sha
        _ = address.TryWriteBytes(arp[14..], out _);                // spa
        _ = address.TryWriteBytes(arp[24..], out _);                // tpa (tha stays zero)
        return FrameLength;
    }
}
