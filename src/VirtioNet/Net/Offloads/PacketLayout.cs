using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// Where the headers of a TCP or UDP frame over IPv4 or IPv6 lie: what every offload decision needs. Found by
/// <see cref="TryParse(ReadOnlySpan{byte}, out PacketLayout)"/>, which checks each length against the frame so no offload ever reads or writes outside it.
/// </summary>
/// <remarks>
/// Recognised: Ethernet II with up to two 802.1Q/802.1ad tags; IPv4 with options but not fragmented; IPv6 whose next
/// header is TCP or UDP directly (extension headers are not walked: such frames are sent without offload, as they
/// are rare and a device would have to walk them too). Anything else is "not offloadable", never an error.
/// </remarks>
public readonly record struct PacketLayout
{
    private const ushort EtherTypeIPv4 = 0x0800;
    private const ushort EtherTypeIPv6 = 0x86DD;
    private const ushort EtherTypeVlan = 0x8100;
    private const ushort EtherTypeQinQ = 0x88A8;
    private const int IPv6HeaderLength = 40;
    private const int UdpHeaderLength = 8;
    private const int TcpMinimumHeaderLength = 20;

    /// <summary>Offset of the IP header.</summary>
    public int NetworkOffset { get; init; }

    /// <summary>Offset of the TCP or UDP header (csum_start).</summary>
    public int TransportOffset { get; init; }

    /// <summary>Length of the TCP header (data offset × 4) or of the UDP header (8).</summary>
    public int TransportHeaderLength { get; init; }

    /// <summary>Where the IP packet ends (the frame may carry Ethernet padding after it).</summary>
    public int PacketEnd { get; init; }

    /// <summary>True for IPv6, false for IPv4.</summary>
    public bool IsIPv6 { get; init; }

    /// <summary><see cref="InternetChecksum.ProtocolTcp"/> or <see cref="InternetChecksum.ProtocolUdp"/>.</summary>
    public byte Protocol { get; init; }

    /// <summary>True for TCP.</summary>
    public bool IsTcp => Protocol == InternetChecksum.ProtocolTcp;

    /// <summary>Every header up to the payload: the exact hdr_len of VIRTIO_NET_F_GUEST_HDRLEN.</summary>
    public int HeaderLength => TransportOffset + TransportHeaderLength;

    /// <summary>The TCP or UDP payload length.</summary>
    public int PayloadLength => PacketEnd - HeaderLength;

    /// <summary>The TCP or UDP length (header and payload): what the pseudo-header counts.</summary>
    public int TransportLength => PacketEnd - TransportOffset;

    /// <summary>Where the checksum field lies from <see cref="TransportOffset"/> (csum_offset): 16 for TCP, 6 for UDP.</summary>
    public int ChecksumFieldOffset => IsTcp ? 16 : 6;

    /// <summary>The IP source address within <paramref name="frame"/> (4 or 16 bytes).</summary>
    public ReadOnlySpan<byte> SourceAddress(ReadOnlySpan<byte> frame) =>
        IsIPv6 ? frame.Slice(NetworkOffset + 8, 16) : frame.Slice(NetworkOffset + 12, 4);

    /// <summary>The IP destination address within <paramref name="frame"/> (4 or 16 bytes).</summary>
    public ReadOnlySpan<byte> DestinationAddress(ReadOnlySpan<byte> frame) =>
        IsIPv6 ? frame.Slice(NetworkOffset + 24, 16) : frame.Slice(NetworkOffset + 16, 4);

    /// <summary>
    /// Finds the headers of a TCP or UDP frame over IPv4 or IPv6. Returns false for any other frame, and for one whose
    /// lengths contradict each other or the frame's length.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out PacketLayout layout) => TryParse(frame, frame.Length, out layout);

    /// <summary>
    /// Like <see cref="TryParse(ReadOnlySpan{byte}, out PacketLayout)"/> for a frame of <paramref name="frameLength"/>
    /// bytes of which only the first, <paramref name="frame"/>, are contiguous (the first buffer of a mergeable packet):
    /// every header up to the payload must lie in <paramref name="frame"/>; the IP lengths are checked against
    /// <paramref name="frameLength"/>. With the whole frame given, the same checks as the one-span form.
    /// </summary>
    internal static bool TryParse(ReadOnlySpan<byte> frame, int frameLength, out PacketLayout layout)
    {
        layout = default;
        if (frame.Length < EthernetFrame.HeaderLength)
        {
            return false;
        }

        int offset = 12;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        for (int tags = 0; tags < 2 && etherType is EtherTypeVlan or EtherTypeQinQ; tags++)
        {
            offset += EthernetFrame.VlanTagLength;
            if (frame.Length < offset + 2)
            {
                return false;
            }

            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        }

        int network = offset + 2;
        int transport;
        int end;
        byte protocol;
        bool ipv6;
        if (etherType == EtherTypeIPv4)
        {
            if (frame.Length < network + 20 || (frame[network] >> 4) != 4)
            {
                return false;
            }

            int ihl = (frame[network] & 0x0F) * 4;
            int totalLength = BinaryPrimitives.ReadUInt16BigEndian(frame[(network + 2)..]);
            ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(frame[(network + 6)..]);

            // More-fragments set or a non-zero offset: only the first fragment has the transport header, and no
            // offload applies to a fragment (RFC 791).
            if (ihl < 20 || totalLength < ihl || network + totalLength > frameLength || (fragment & 0x3FFF) != 0)
            {
                return false;
            }

            protocol = frame[network + 9];
            transport = network + ihl;
            end = network + totalLength;
            ipv6 = false;
        }
        else if (etherType == EtherTypeIPv6)
        {
            if (frame.Length < network + IPv6HeaderLength || (frame[network] >> 4) != 6)
            {
                return false;
            }

            int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(frame[(network + 4)..]);
            protocol = frame[network + 6];
            transport = network + IPv6HeaderLength;
            end = transport + payloadLength;
            ipv6 = true;
            if (end > frameLength)
            {
                return false;
            }
        }
        else
        {
            return false;
        }

        int transportHeader;
        if (protocol == InternetChecksum.ProtocolTcp)
        {
            if (end < transport + TcpMinimumHeaderLength || frame.Length < transport + TcpMinimumHeaderLength)
            {
                return false;
            }

            transportHeader = (frame[transport + 12] >> 4) * 4;
            if (transportHeader < TcpMinimumHeaderLength || transport + transportHeader > end)
            {
                return false;
            }
        }
        else if (protocol == InternetChecksum.ProtocolUdp)
        {
            transportHeader = UdpHeaderLength;
            if (transport + transportHeader > end)
            {
                return false;
            }
        }
        else
        {
            return false;
        }

        // Every header in the contiguous part (always so when it is the whole frame: the end lies within it).
        if (transport + transportHeader > frame.Length)
        {
            return false;
        }

        layout = new PacketLayout
        {
            NetworkOffset = network,
            TransportOffset = transport,
            TransportHeaderLength = transportHeader,
            PacketEnd = end,
            IsIPv6 = ipv6,
            Protocol = protocol,
        };
        return true;
    }
}
