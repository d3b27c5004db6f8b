using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using PacketDotNet.DhcpV4;
using PacketDotNet.Utils;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Builds the client's DHCP messages (RFC 2131 §2, §4.4.1) as Ethernet/IPv4/UDP frames with PacketDotNet.
/// The fixed BOOTP fields go through <see cref="DhcpV4Packet"/>'s properties; the option area is laid out here,
/// because PacketDotNet 1.4.8 has no way to create a DHCP packet and its <c>SetOptions</c> leaves the End
/// option outside the packet's length.
/// </summary>
internal static class DhcpMessageBuilder
{
    /// <summary>
    /// Every message is padded to the 300 octets of a BOOTP message (RFC 951 §3: a fixed 64-octet vendor area);
    /// RFC 1542 §2.1 notes servers and relays that drop anything shorter.
    /// </summary>
    private const int BootpMinimumLength = 300;

    /// <summary>The BROADCAST bit, the most significant bit of the 16-bit flags field (RFC 2131 §2, figure 2).
    /// Set through <see cref="DhcpV4Packet.Flags"/>: PacketDotNet 1.4.8's <c>Broadcast</c> property sets 0x0080 instead.</summary>
    private const ushort BroadcastFlag = 0x8000;

    /// <summary>What we ask the server for (option 55): subnet mask, router, DNS servers, lease time.</summary>
    private static readonly DhcpV4OptionType[] RequestedParameters =
    [
        DhcpV4OptionType.SubnetMask,
        DhcpV4OptionType.Router,
        DhcpV4OptionType.DomainServer,
        DhcpV4OptionType.AddressTime,
    ];

    /// <summary>
    /// Builds a DHCPDISCOVER or DHCPREQUEST from 0.0.0.0:68 to 255.255.255.255:67, broadcast on Ethernet.
    /// </summary>
    /// <param name="clientMac">chaddr and the client identifier.</param>
    /// <param name="transactionId">xid, the same for every message of one acquisition.</param>
    /// <param name="seconds">secs, seconds since the acquisition began.</param>
    /// <param name="broadcast">Whether to set the BROADCAST flag.</param>
    /// <param name="messageType">Option 53.</param>
    /// <param name="requestedAddress">Option 50 (DHCPREQUEST in SELECTING state), or null.</param>
    /// <param name="serverIdentifier">Option 54 (DHCPREQUEST in SELECTING state), or null.</param>
    public static EthernetPacket BuildClientMessage(
        PhysicalAddress clientMac,
        uint transactionId,
        ushort seconds,
        bool broadcast,
        DhcpV4MessageType messageType,
        IPAddress? requestedAddress,
        IPAddress? serverIdentifier)
    {
        var options = new List<DhcpV4Option>
        {
            // PacketDotNet reads the message type only when it is the first option, and so do some servers.
            new MessageTypeOption(messageType),
            // RFC 2132 §9.14: type 1 (Ethernet) followed by the MAC, the form most servers key leases on.
            new ClientIdOption(clientMac) { HardwareType = DhcpV4HardwareType.Ethernet },
        };
        if (requestedAddress is not null)
            options.Add(new AddressRequestOption(requestedAddress));
        if (serverIdentifier is not null)
            options.Add(new ServerIdOption(serverIdentifier));
        options.Add(new ParameterListOption([.. RequestedParameters]));

        // Each option is type, length, data (RFC 2132 §2); one more byte for End. Zeros after End are Pad.
        var optionsLength = options.Sum(option => 2 + option.Length) + 1;
        var payload = new byte[Math.Max(BootpMinimumLength, DhcpV4Fields.OptionsPosition + optionsLength)];
        var udp = new UdpPacket(DhcpV4Fields.ClientPort, DhcpV4Fields.ServerPort);

        // DhcpV4Packet is a view over payload: its setters write the fixed BOOTP fields in place.
        _ = new DhcpV4Packet(new ByteArraySegment(payload), udp)
        {
            Operation = DhcpV4Operation.BootRequest,
            HardwareType = DhcpV4HardwareType.Ethernet,
            HardwareLength = (byte)clientMac.GetAddressBytes().Length,
            Xid = transactionId,
            Secs = seconds,
            Flags = broadcast ? BroadcastFlag : (ushort)0,
            ClientAddress = IPAddress.Any,
            YourAddress = IPAddress.Any,
            ServerAddress = IPAddress.Any,
            GatewayAddress = IPAddress.Any,
            ClientHardwareAddress = clientMac,
            MagicNumber = DhcpV4Fields.MagicNumber,
        };
        WriteOptions(payload, options);
        udp.PayloadData = payload;

        var ip = new IPv4Packet(IPAddress.Any, IPAddress.Broadcast)
        {
            TimeToLive = 64,
            PayloadPacket = udp,
        };
        var ethernet = new EthernetPacket(clientMac, DiagnosticLink.BroadcastMac, EthernetType.IPv4) { PayloadPacket = ip };
        ip.UpdateCalculatedValues();
        udp.UpdateCalculatedValues();
        udp.UpdateUdpChecksum();
        ip.UpdateIPChecksum();
        return ethernet;
    }

    /// <summary>
    /// Writes options as type-length-value triples (RFC 2132 §2) from the start of the option area, then End.
    /// </summary>
    private static void WriteOptions(byte[] payload, IReadOnlyList<DhcpV4Option> options)
    {
        var position = DhcpV4Fields.OptionsPosition;
        foreach (var option in options)
        {
            payload[position++] = (byte)option.OptionType;
            payload[position++] = (byte)option.Length;
            option.Data.CopyTo(payload, position);
            position += option.Length;
        }

        payload[position] = (byte)DhcpV4OptionType.End;
    }
}
