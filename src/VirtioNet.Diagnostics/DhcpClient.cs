using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using PacketDotNet;
using PacketDotNet.DhcpV4;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Acquires an IPv4 lease: DHCPDISCOVER → DHCPOFFER → DHCPREQUEST → DHCPACK (RFC 2131 §3.1), retransmitting with
/// exponential back-off. It only acquires: no renewal, no release, and no ARP probe of the offered address
/// (RFC 2131 §4.4.1 says SHOULD; a diagnostic session on a private network skips it).
/// </summary>
public sealed class DhcpClient(DiagnosticLink link, DhcpClientOptions? options = null)
{
    private readonly DiagnosticLink _link = link ?? throw new ArgumentNullException(nameof(link));

    /// <summary>How messages are retransmitted.</summary>
    public DhcpClientOptions Options { get; } = options ?? new DhcpClientOptions();

    /// <summary>Runs one acquisition and returns the lease; the link is not configured with it (the caller decides).</summary>
    /// <exception cref="DiagnosticsException">No offer, a NAK, no ACK, or an ACK without an address.</exception>
    public async ValueTask<DhcpLease> AcquireAsync(CancellationToken cancellationToken = default)
    {
        // RFC 2131 §4.1: xid is random, so that replies to other clients (or to an earlier run) are not taken for ours.
        var transactionId = BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(sizeof(uint)));
        var started = Stopwatch.GetTimestamp();

        var offer = await ExchangeAsync(
            transactionId, started, DhcpV4MessageType.Discover, null, null, null, cancellationToken).ConfigureAwait(false)
            ?? throw new DiagnosticsException(
                DiagnosticsErrorReason.NoDhcpOffer,
                $"No DHCPOFFER after {Options.Attempts} DHCPDISCOVER(s) (xid 0x{transactionId:x8}): is a DHCP server on the link?");

        var offered = offer.Packet.YourAddress;
        var server = offer.ServerIdentifier;
        var reply = await ExchangeAsync(transactionId, started, DhcpV4MessageType.Request, offered, server, server, cancellationToken).ConfigureAwait(false)
            ?? throw new DiagnosticsException(
                DiagnosticsErrorReason.NoDhcpAck,
                $"No DHCPACK from {server} after {Options.Attempts} DHCPREQUEST(s) for {offered} (xid 0x{transactionId:x8}).");

        if (reply.Packet.MessageType == DhcpV4MessageType.Nak)
        {
            var reason = reply.Options.OfType<MessageOption>().FirstOrDefault()?.DhcpMessage;
            throw new DiagnosticsException(
                DiagnosticsErrorReason.DhcpNak,
                $"DHCP server {server} refused {offered} with DHCPNAK" + (string.IsNullOrEmpty(reason) ? "." : $": {reason}"));
        }

        return ToLease(reply);
    }

    /// <summary>
    /// Sends one client message until a matching reply arrives or the attempts run out. DHCPDISCOVER waits for a
    /// DHCPOFFER; DHCPREQUEST for a DHCPACK or DHCPNAK from <paramref name="expectedServer"/>.
    /// </summary>
    private async ValueTask<DhcpReply?> ExchangeAsync(
        uint transactionId,
        long started,
        DhcpV4MessageType messageType,
        IPAddress? requestedAddress,
        IPAddress? serverIdentifier,
        IPAddress? expectedServer,
        CancellationToken cancellationToken)
    {
        var timeout = Options.InitialTimeout;
        for (var attempt = 0; attempt < Options.Attempts; attempt++)
        {
            var seconds = (ushort)Math.Min(ushort.MaxValue, Stopwatch.GetElapsedTime(started).TotalSeconds);
            var message = DhcpMessageBuilder.BuildClientMessage(
                _link.MacAddress, transactionId, seconds, Options.RequestBroadcastReplies, messageType,
                requestedAddress, serverIdentifier);
            await _link.SendAsync(message, cancellationToken).ConfigureAwait(false);

            var reply = await _link.WaitForAsync(timeout, frame => Match(frame, transactionId, messageType, expectedServer), cancellationToken).ConfigureAwait(false);
            if (reply is not null)
                return reply;

            timeout = TimeSpan.FromTicks(Math.Min(timeout.Ticks * 2, Options.MaximumTimeout.Ticks));
        }

        return null;
    }

    private DhcpReply? Match(EthernetPacket frame, uint transactionId, DhcpV4MessageType sent, IPAddress? expectedServer)
    {
        if (frame.PayloadPacket is not IPv4Packet { PayloadPacket: UdpPacket udp } ip
            || udp.SourcePort != DhcpV4Fields.ServerPort || udp.DestinationPort != DhcpV4Fields.ClientPort
            || udp.PayloadPacket is not DhcpV4Packet dhcp)
            return null;

        if (dhcp.Operation != DhcpV4Operation.BootReply || dhcp.Xid != transactionId
            || !dhcp.ClientHardwareAddress.Equals(_link.MacAddress))
            return null;

        var wanted = sent == DhcpV4MessageType.Discover
            ? dhcp.MessageType == DhcpV4MessageType.Offer
            : dhcp.MessageType is DhcpV4MessageType.Ack or DhcpV4MessageType.Nak;
        if (!wanted)
            return null;

        var options = dhcp.GetOptions();
        var server = options.OfType<ServerIdOption>().FirstOrDefault()?.ServerId ?? ip.SourceAddress;

        // RFC 2131 §4.3.2: only the server we chose answers a REQUEST in SELECTING state; others drop it.
        if (expectedServer is not null && !server.Equals(expectedServer))
            return null;

        // An offer without an address offers nothing; wait for a better one.
        if (dhcp.MessageType == DhcpV4MessageType.Offer && dhcp.YourAddress.Equals(IPAddress.Any))
            return null;

        return new DhcpReply(dhcp, options, server);
    }

    private static DhcpLease ToLease(DhcpReply ack)
    {
        var address = ack.Packet.YourAddress;
        if (address.Equals(IPAddress.Any))
        {
            throw new DiagnosticsException(
                DiagnosticsErrorReason.InvalidDhcpReply,
                $"DHCPACK from {ack.ServerIdentifier} carries no address (yiaddr 0.0.0.0).");
        }

        var options = ack.Options;
        var mask = options.OfType<SubnetMaskOption>().FirstOrDefault()?.SubnetMask ?? ClassfulMask(address);
        var router = options.OfType<RouterOption>().FirstOrDefault()?.Routers.FirstOrDefault();
        var dns = options.OfType<DomainNameServerOption>().FirstOrDefault()?.DomainNameServers ?? [];
        var leaseTime = options.OfType<AddressTimeOption>().FirstOrDefault()?.AddressTime;
        return new DhcpLease(address, mask, router, dns.AsReadOnly(), ack.ServerIdentifier, leaseTime);
    }

    /// <summary>The class A/B/C mask of <paramref name="address"/> (RFC 791), the fallback RFC 2131 leaves to the client.</summary>
    private static IPAddress ClassfulMask(IPAddress address)
    {
        var first = address.GetAddressBytes()[0];
        return first switch
        {
            < 128 => IPAddress.Parse("255.0.0.0"),
            < 192 => IPAddress.Parse("255.255.0.0"),
            _ => IPAddress.Parse("255.255.255.0"),
        };
    }

    /// <summary>A matched server reply, with its options decoded once.</summary>
    private sealed record DhcpReply(DhcpV4Packet Packet, IReadOnlyList<DhcpV4Option> Options, IPAddress ServerIdentifier);
}
