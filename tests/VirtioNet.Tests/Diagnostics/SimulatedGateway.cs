using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using PacketDotNet.DhcpV4;
using PacketDotNet.Utils;
using VirtioNet.Diagnostics;

namespace VirtioNet.Tests.Diagnostics;

/// <summary>
/// A simulation of QEMU's user network (slirp) behind <see cref="IFramePort"/>, entirely in memory: a DHCP server
/// handing out 10.0.2.15, a gateway (10.0.2.2) and DNS server (10.0.2.3) that answer ARP, and echo replies for
/// them and for "external" hosts. Like slirp, it does not know the guest's MAC until the guest answers its ARP
/// request, and holds unicast replies until then. Frames are built with PacketDotNet, independently of the code
/// under test. Knobs spoil the exchange on purpose; records let tests check what the client sent.
/// </summary>
public sealed class SimulatedGateway : IFramePort
{
    public static readonly IPAddress GatewayAddress = IPAddress.Parse("10.0.2.2");
    public static readonly IPAddress DnsAddress = IPAddress.Parse("10.0.2.3");
    public static readonly IPAddress GuestAddress = IPAddress.Parse("10.0.2.15");
    public static readonly IPAddress Netmask = IPAddress.Parse("255.255.255.0");
    public static readonly IPAddress ExternalHost = IPAddress.Parse("93.184.216.34");
    public static readonly PhysicalAddress GatewayMac = PhysicalAddress.Parse("52-55-0A-00-02-02");
    public static readonly PhysicalAddress DnsMac = PhysicalAddress.Parse("52-55-0A-00-02-03");
    public static readonly TimeSpan LeaseTime = TimeSpan.FromHours(24);
    private static readonly PhysicalAddress Broadcast = PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF");

    private readonly Queue<byte[]> _toGuest = new();
    private readonly List<Func<PhysicalAddress, byte[]>> _heldForGuestMac = [];
    private PhysicalAddress? _guestMac;
    private bool _askedForGuestMac;

    public SimulatedGateway(PhysicalAddress? guestMac = null) =>
        MacAddress = guestMac ?? PhysicalAddress.Parse("52-54-00-12-34-56");

    public PhysicalAddress MacAddress { get; }

    // Knobs.
    public bool AnswersDhcp { get; set; } = true;
    public bool NaksRequests { get; set; }
    public string NakMessage { get; set; } = "requested address not available";
    public Func<ushort, EchoReplyFault> EchoFault { get; set; } = _ => EchoReplyFault.None;
    public bool FollowFaultWithCorrectReply { get; set; }
    public int RefuseNextSends { get; set; }

    // Records.
    public List<DhcpV4Packet> DhcpMessagesFromGuest { get; } = [];
    public List<ArpPacket> ArpRequestsFromGuest { get; } = [];
    public List<EthernetPacket> EchoRequestsFromGuest { get; } = [];
    public int InvalidFramesFromGuest { get; private set; }
    public PhysicalAddress? GuestMacLearnedByArp { get; private set; }

    /// <summary>Queues a raw frame for the guest ahead of anything the simulation sends later.</summary>
    public void Inject(byte[] frame) => _toGuest.Enqueue(frame);

    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        if (RefuseNextSends > 0)
        {
            RefuseNextSends--;
            return false;
        }

        var ethernet = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, frame.ToArray());
        if (frame.Length < 60 || !ethernet.SourceHardwareAddress.Equals(MacAddress))
            InvalidFramesFromGuest++;

        switch (ethernet.PayloadPacket)
        {
            case ArpPacket arp:
                OnArp(arp);
                break;
            case IPv4Packet ip when !ip.ValidIPChecksum:
                InvalidFramesFromGuest++;
                break;
            case IPv4Packet { PayloadPacket: UdpPacket udp } ip:
                if (!udp.ValidUdpChecksum)
                    InvalidFramesFromGuest++;
                else if (udp.PayloadPacket is DhcpV4Packet dhcp && udp.DestinationPort == 67)
                    OnDhcp(dhcp, ethernet, ip);
                break;
            case IPv4Packet { PayloadPacket: IcmpV4Packet icmp } ip:
                if (!icmp.ValidIcmpChecksum)
                    InvalidFramesFromGuest++;
                else if (icmp.TypeCode == IcmpV4TypeCode.EchoRequest)
                    OnEchoRequest(ethernet, ip, icmp);
                break;
        }

        return true;
    }

    public async ValueTask<int> ReceiveAsync(Memory<byte> buffer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_toGuest.TryDequeue(out var frame))
        {
            frame.CopyTo(buffer);
            return frame.Length;
        }

        // Nothing will arrive: let the time pass as a real device would, so that timeouts are real.
        await Task.Delay(timeout, cancellationToken);
        return 0;
    }

    private void OnArp(ArpPacket arp)
    {
        if (arp.Operation == ArpOperation.Response)
        {
            if (arp.SenderProtocolAddress.Equals(GuestAddress) && arp.TargetProtocolAddress.Equals(GatewayAddress))
            {
                _guestMac = arp.SenderHardwareAddress;
                GuestMacLearnedByArp = arp.SenderHardwareAddress;
                foreach (var build in _heldForGuestMac)
                    _toGuest.Enqueue(build(_guestMac));
                _heldForGuestMac.Clear();
            }

            return;
        }

        ArpRequestsFromGuest.Add(arp);
        var target = arp.TargetProtocolAddress;
        var mac = target.Equals(GatewayAddress) ? GatewayMac : target.Equals(DnsAddress) ? DnsMac : null;
        if (mac is null)
            return;

        // ArpPacket's constructor takes the target pair first, then the sender pair.
        var reply = new ArpPacket(ArpOperation.Response, arp.SenderHardwareAddress, arp.SenderProtocolAddress, mac, target);
        _toGuest.Enqueue(new EthernetPacket(mac, arp.SenderHardwareAddress, EthernetType.Arp) { PayloadPacket = reply }.Bytes);
    }

    private void OnDhcp(DhcpV4Packet request, EthernetPacket ethernet, IPv4Packet ip)
    {
        DhcpMessagesFromGuest.Add(request);
        if (!AnswersDhcp)
            return;

        var type = request.MessageType;
        var replyType = type switch
        {
            DhcpV4MessageType.Discover => DhcpV4MessageType.Offer,
            DhcpV4MessageType.Request => NaksRequests ? DhcpV4MessageType.Nak : DhcpV4MessageType.Ack,
            _ => (DhcpV4MessageType?)null,
        };
        if (replyType is null)
            return;

        var options = new List<DhcpV4Option> { new MessageTypeOption(replyType.Value), new ServerIdOption(GatewayAddress) };
        if (replyType == DhcpV4MessageType.Nak)
        {
            options.Add(new MessageOption(NakMessage));
        }
        else
        {
            options.Add(new AddressTimeOption(LeaseTime));
            options.Add(new SubnetMaskOption(Netmask));
            options.Add(new RouterOption([GatewayAddress]));
            options.Add(new DomainNameServerOption([DnsAddress]));
        }

        _toGuest.Enqueue(BuildDhcpReply(request, replyType.Value, options));
    }

    private byte[] BuildDhcpReply(DhcpV4Packet request, DhcpV4MessageType type, List<DhcpV4Option> options)
    {
        var payload = new byte[DhcpV4Fields.OptionsPosition + 312];
        var udp = new UdpPacket(DhcpV4Fields.ServerPort, DhcpV4Fields.ClientPort);
        _ = new DhcpV4Packet(new ByteArraySegment(payload), udp)
        {
            Operation = DhcpV4Operation.BootReply,
            HardwareType = DhcpV4HardwareType.Ethernet,
            HardwareLength = 6,
            Xid = request.Xid,
            Flags = request.Flags,
            YourAddress = type == DhcpV4MessageType.Nak ? IPAddress.Any : GuestAddress,
            ServerAddress = GatewayAddress,
            ClientAddress = IPAddress.Any,
            GatewayAddress = IPAddress.Any,
            ClientHardwareAddress = request.ClientHardwareAddress,
            MagicNumber = DhcpV4Fields.MagicNumber,
        };
        var position = DhcpV4Fields.OptionsPosition;
        foreach (var option in options)
        {
            payload[position++] = (byte)option.OptionType;
            payload[position++] = (byte)option.Length;
            option.Data.CopyTo(payload, position);
            position += option.Length;
        }

        payload[position] = 255;
        udp.PayloadData = payload;
        var ip = new IPv4Packet(GatewayAddress, IPAddress.Broadcast) { TimeToLive = 255, PayloadPacket = udp };
        var ethernet = new EthernetPacket(GatewayMac, Broadcast, EthernetType.IPv4) { PayloadPacket = ip };
        ip.UpdateCalculatedValues();
        udp.UpdateCalculatedValues();
        udp.UpdateUdpChecksum();
        ip.UpdateIPChecksum();
        return ethernet.Bytes;
    }

    private void OnEchoRequest(EthernetPacket ethernet, IPv4Packet ip, IcmpV4Packet request)
    {
        EchoRequestsFromGuest.Add(ethernet);
        var target = ip.DestinationAddress;
        if (!target.Equals(GatewayAddress) && !target.Equals(DnsAddress) && !target.Equals(ExternalHost))
            return;

        var fault = EchoFault(request.Sequence);
        if (fault == EchoReplyFault.Drop)
            return;

        var id = request.Id;
        var sequence = request.Sequence;
        var data = request.Data;
        var replies = new List<Func<PhysicalAddress, byte[]>> { mac => BuildEchoReply(mac, target, id, sequence, data, fault) };
        if (fault != EchoReplyFault.None && FollowFaultWithCorrectReply)
            replies.Add(mac => BuildEchoReply(mac, target, id, sequence, data, EchoReplyFault.None));

        foreach (var build in replies)
        {
            if (_guestMac is { } known)
            {
                _toGuest.Enqueue(build(known));
                continue;
            }

            // slirp does not route to a MAC it has not resolved: it asks, and sends once the guest answers.
            _heldForGuestMac.Add(build);
            if (!_askedForGuestMac)
            {
                _askedForGuestMac = true;
                var ask = new ArpPacket(ArpOperation.Request, PhysicalAddress.Parse("00-00-00-00-00-00"), GuestAddress, GatewayMac, GatewayAddress);
                _toGuest.Enqueue(new EthernetPacket(GatewayMac, Broadcast, EthernetType.Arp) { PayloadPacket = ask }.Bytes);
            }
        }
    }

    private static byte[] BuildEchoReply(PhysicalAddress guestMac, IPAddress from, ushort id, ushort sequence, byte[] data, EchoReplyFault fault)
    {
        var payload = (byte[])data.Clone();
        if (fault == EchoReplyFault.WrongPayload && payload.Length > 0)
            payload[^1] ^= 0xFF;

        var bytes = new byte[8 + payload.Length];
        payload.CopyTo(bytes, 8);
        var icmp = new IcmpV4Packet(new ByteArraySegment(bytes))
        {
            TypeCode = IcmpV4TypeCode.EchoReply,
            Id = fault == EchoReplyFault.WrongIdentifier ? (ushort)(id + 1) : id,
            Sequence = fault == EchoReplyFault.WrongSequence ? (ushort)(sequence + 1) : sequence,
        };
        var ip = new IPv4Packet(from, GuestAddress) { TimeToLive = 255, PayloadPacket = icmp };
        var ethernet = new EthernetPacket(GatewayMac, guestMac, EthernetType.IPv4) { PayloadPacket = ip };
        icmp.UpdateIcmpChecksum();
        if (fault == EchoReplyFault.BadChecksum)
            icmp.Checksum ^= 0x5A5A;
        ip.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        return ethernet.Bytes;
    }
}
