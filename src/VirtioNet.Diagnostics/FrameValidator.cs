using PacketDotNet;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Parses a received frame with PacketDotNet and checks what PacketDotNet leaves unchecked: PacketDotNet parses
/// lazily, trusts length fields and throws on truncated input, so a hostile or broken peer must not reach the
/// protocol code with anything that has not passed here.
/// </summary>
internal static class FrameValidator
{
    /// <summary>Ethernet header length: destination, source, type.</summary>
    private const int EthernetHeaderLength = 14;

    /// <summary>An ARP packet for Ethernet and IPv4 (RFC 826): 8 bytes of header and two 6+4-byte address pairs.</summary>
    private const int ArpEthernetIPv4Length = 28;

    /// <summary>The IPv4 "more fragments" bit as PacketDotNet's <see cref="IPv4Packet.FragmentFlags"/> reports it (RFC 791).</summary>
    private const int MoreFragmentsFlag = 0b001;

    /// <summary>UDP and ICMP headers are both 8 bytes.</summary>
    private const int TransportHeaderLength = 8;

    /// <summary>Parses <paramref name="frame"/> and decides whether the protocol code may look at it.</summary>
    public static FrameVerdict Validate(ReadOnlySpan<byte> frame, out EthernetPacket? packet)
    {
        packet = null;
        if (frame.Length < EthernetHeaderLength)
            return FrameVerdict.Malformed;

        try
        {
            var ethernet = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, frame.ToArray());
            var verdict = ethernet.Type switch
            {
                EthernetType.Arp => ValidateArp(ethernet, frame.Length - EthernetHeaderLength),
                EthernetType.IPv4 => ValidateIPv4(ethernet, frame.Length - EthernetHeaderLength),
                _ => FrameVerdict.Unsupported,
            };
            if (verdict == FrameVerdict.Valid)
                packet = ethernet;
            return verdict;
        }
        catch (Exception exception) when (IsParseFailure(exception))
        {
            // PacketDotNet reports truncation by indexing past its array; that is a malformed frame, not a bug here.
            return FrameVerdict.Malformed;
        }
    }

    private static FrameVerdict ValidateArp(EthernetPacket ethernet, int available)
    {
        if (available < ArpEthernetIPv4Length || ethernet.PayloadPacket is not ArpPacket arp)
            return FrameVerdict.Malformed;

        // Only Ethernet/IPv4 ARP is meaningful here (RFC 826 hrd=1, pro=0x0800, hln=6, pln=4).
        return arp.HardwareAddressType == LinkLayers.Ethernet && arp.ProtocolAddressType == EthernetType.IPv4
            && arp.HardwareAddressLength == 6 && arp.ProtocolAddressLength == 4
            ? FrameVerdict.Valid
            : FrameVerdict.Unsupported;
    }

    private static FrameVerdict ValidateIPv4(EthernetPacket ethernet, int available)
    {
        if (available < IPv4Packet.HeaderMinimumLength || ethernet.PayloadPacket is not IPv4Packet ip)
            return FrameVerdict.Malformed;

        var headerLength = ip.HeaderLength * 4;
        if (ip.Version != IPVersion.IPv4 || headerLength < IPv4Packet.HeaderMinimumLength
            || ip.TotalLength < headerLength || ip.TotalLength > available || !ip.ValidIPChecksum)
            return FrameVerdict.Malformed;

        // No reassembly: a fragment cannot be checked or matched on its own.
        if ((ip.FragmentFlags & MoreFragmentsFlag) != 0 || ip.FragmentOffset != 0)
            return FrameVerdict.Unsupported;

        var payloadLength = ip.TotalLength - headerLength;
        switch (ip.Protocol)
        {
            case ProtocolType.Udp:
                if (payloadLength < TransportHeaderLength || ip.PayloadPacket is not UdpPacket udp)
                    return FrameVerdict.Malformed;
                // A zero UDP checksum means "not computed" over IPv4 (RFC 768).
                if (udp.Length < TransportHeaderLength || udp.Length > payloadLength
                    || (udp.Checksum != 0 && !udp.ValidUdpChecksum))
                    return FrameVerdict.Malformed;

                // PacketDotNet decodes DHCP options on demand and throws on a bad option length: decode them once
                // here, inside the try, so that the DHCP client's later decoding of the same bytes cannot throw.
                if (udp.PayloadPacket is DhcpV4Packet dhcp)
                    _ = dhcp.GetOptions();
                return FrameVerdict.Valid;

            case ProtocolType.Icmp:
                if (payloadLength < TransportHeaderLength || ip.PayloadPacket is not IcmpV4Packet icmp)
                    return FrameVerdict.Malformed;
                return icmp.ValidIcmpChecksum ? FrameVerdict.Valid : FrameVerdict.Malformed;

            default:
                return FrameVerdict.Unsupported;
        }
    }

    private static bool IsParseFailure(Exception exception) =>
        exception is IndexOutOfRangeException or ArgumentException or InvalidOperationException
            or InvalidCastException or OverflowException or NullReferenceException;
}
