using PacketDotNet;
using PacketDotNet.DhcpV4;
using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

public class DhcpClientTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task LeaseFromSlirpCarriesAddressMaskRouterDnsServerAndLeaseTime()
    {
        var gateway = new SimulatedGateway();
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session());

        var lease = await session.AcquireLeaseAsync(Token);

        Assert.Equal(SimulatedGateway.GuestAddress, lease.Address);
        Assert.Equal(SimulatedGateway.Netmask, lease.SubnetMask);
        Assert.Equal(SimulatedGateway.GatewayAddress, lease.Router);
        Assert.Equal([SimulatedGateway.DnsAddress], lease.DnsServers);
        Assert.Equal(SimulatedGateway.GatewayAddress, lease.ServerIdentifier);
        Assert.Equal(SimulatedGateway.LeaseTime, lease.LeaseTime);
        Assert.Equal(SimulatedGateway.GuestAddress, session.Address);
        Assert.Same(lease, session.Lease);
        Assert.Equal(0, gateway.InvalidFramesFromGuest);
    }

    [Fact]
    public async Task DiscoverAndRequestFollowRfc2131()
    {
        var gateway = new SimulatedGateway();
        await new DiagnosticClient(gateway, DiagnosticsTestOptions.Session()).AcquireLeaseAsync(Token);

        Assert.Equal(2, gateway.DhcpMessagesFromGuest.Count);
        var discover = gateway.DhcpMessagesFromGuest[0];
        var request = gateway.DhcpMessagesFromGuest[1];
        Assert.Equal(DhcpV4MessageType.Discover, discover.MessageType);
        Assert.Equal(DhcpV4MessageType.Request, request.MessageType);
        Assert.Equal(discover.Xid, request.Xid);

        foreach (var message in gateway.DhcpMessagesFromGuest)
        {
            Assert.Equal(DhcpV4Operation.BootRequest, message.Operation);
            Assert.Equal(DhcpV4HardwareType.Ethernet, message.HardwareType);
            Assert.Equal(6, message.HardwareLength);
            // The BROADCAST bit is the top bit of flags (RFC 2131 figure 2), not PacketDotNet's 0x0080.
            Assert.Equal(0x8000, message.Flags);
            Assert.Equal(gateway.MacAddress, message.ClientHardwareAddress);
            Assert.True(message.BytesSegment.Length >= 300, "a BOOTP message is at least 300 octets");

            var options = message.GetOptions();
            var clientId = Assert.Single(options.OfType<ClientIdOption>());
            Assert.Equal(DhcpV4HardwareType.Ethernet, clientId.HardwareType);
            Assert.Equal(gateway.MacAddress, clientId.HardwareAddress);
            var parameters = Assert.Single(options.OfType<ParameterListOption>()).ParameterList;
            Assert.Subset(parameters, new HashSet<DhcpV4OptionType>
            {
                DhcpV4OptionType.SubnetMask, DhcpV4OptionType.Router, DhcpV4OptionType.DomainServer, DhcpV4OptionType.AddressTime,
            });
        }

        Assert.Empty(discover.GetOptions().OfType<AddressRequestOption>());
        var requestOptions = request.GetOptions();
        Assert.Equal(SimulatedGateway.GuestAddress, Assert.Single(requestOptions.OfType<AddressRequestOption>()).RequestedIP);
        Assert.Equal(SimulatedGateway.GatewayAddress, Assert.Single(requestOptions.OfType<ServerIdOption>()).ServerId);
    }

    [Fact]
    public async Task NoOfferThrowsAfterEveryAttempt()
    {
        var gateway = new SimulatedGateway { AnswersDhcp = false };
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session(dhcpAttempts: 3));

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.AcquireLeaseAsync(Token));

        Assert.Equal(DiagnosticsErrorReason.NoDhcpOffer, failure.Reason);
        Assert.Contains("DHCPOFFER", failure.Message, StringComparison.Ordinal);
        Assert.Equal(3, gateway.DhcpMessagesFromGuest.Count);
        Assert.All(gateway.DhcpMessagesFromGuest, m => Assert.Equal(DhcpV4MessageType.Discover, m.MessageType));
        Assert.Single(gateway.DhcpMessagesFromGuest.Select(m => m.Xid).Distinct());
        Assert.Null(session.Address);
    }

    [Fact]
    public async Task NakThrowsWithTheServersReason()
    {
        var gateway = new SimulatedGateway { NaksRequests = true, NakMessage = "address in use elsewhere" };
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session());

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.AcquireLeaseAsync(Token));

        Assert.Equal(DiagnosticsErrorReason.DhcpNak, failure.Reason);
        Assert.Contains("address in use elsewhere", failure.Message, StringComparison.Ordinal);
        Assert.Contains("10.0.2.15", failure.Message, StringComparison.Ordinal);
        Assert.Null(session.Lease);
        Assert.Null(session.Address);
    }

    [Fact]
    public async Task OfferForAnotherTransactionIsIgnored()
    {
        var gateway = new SimulatedGateway { AnswersDhcp = false };
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session(dhcpAttempts: 1));

        // An offer for our MAC but an xid we never used: from an earlier run, or a spoofer.
        var foreign = ForeignOffer(gateway, transactionId: 0xDEADBEEF);
        gateway.Inject(foreign);

        var failure = await Assert.ThrowsAsync<DiagnosticsException>(async () => await session.AcquireLeaseAsync(Token));
        Assert.Equal(DiagnosticsErrorReason.NoDhcpOffer, failure.Reason);
        Assert.Equal(1, session.Counters.IgnoredFrames);
        Assert.Equal(0, session.Counters.MalformedFrames);
    }

    private static byte[] ForeignOffer(SimulatedGateway gateway, uint transactionId)
    {
        var payload = new byte[300];
        var udp = new UdpPacket(67, 68);
        _ = new DhcpV4Packet(new PacketDotNet.Utils.ByteArraySegment(payload), udp)
        {
            Operation = DhcpV4Operation.BootReply,
            HardwareType = DhcpV4HardwareType.Ethernet,
            HardwareLength = 6,
            Xid = transactionId,
            YourAddress = SimulatedGateway.GuestAddress,
            ClientHardwareAddress = gateway.MacAddress,
            MagicNumber = DhcpV4Fields.MagicNumber,
        };
        payload[240] = 53;
        payload[241] = 1;
        payload[242] = (byte)DhcpV4MessageType.Offer;
        payload[243] = 255;
        return TestFrames.Udp(gateway.MacAddress, 67, 68, payload);
    }
}
