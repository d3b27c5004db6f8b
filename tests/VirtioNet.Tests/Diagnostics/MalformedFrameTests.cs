using System.Buffers.Binary;
using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

public class MalformedFrameTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public static TheoryData<string> Damages => new()
    {
        "runt", "ethernet header only", "truncated IPv4 header", "IPv4 total length past the frame",
        "wrong IPv4 header checksum", "wrong UDP checksum", "UDP length past the datagram", "wrong ICMP checksum",
        "truncated ARP",
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task DamagedFrameIsDroppedAndCountedWhileTheFlowSucceeds(string damage)
    {
        var gateway = new SimulatedGateway();
        var session = new DiagnosticClient(gateway, DiagnosticsTestOptions.Session());
        gateway.Inject(Damage(damage, gateway));

        await session.AcquireLeaseAsync(Token);
        var reply = await session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping()).SendAsync(Token);

        Assert.Equal(PingStatus.Success, reply.Status);
        Assert.Equal(1, session.Counters.MalformedFrames);
    }

    [Fact]
    public async Task RandomFramesNeverThrowAndAreAllAccountedFor()
    {
        var gateway = new SimulatedGateway();
        var session = await DiagnosticsTestOptions.LeasedSession(gateway);
        var random = new Random(20_26);
        const int Frames = 500;
        for (var i = 0; i < Frames; i++)
        {
            // At least one byte: through IFramePort a zero-length frame is indistinguishable from "nothing arrived".
            var frame = new byte[random.Next(1, 200)];
            random.NextBytes(frame);
            if (frame.Length >= 14)
            {
                // Mostly IPv4 and ARP, to get past the Ethernet type into the parsers.
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), (i % 3) switch { 0 => 0x0800, 1 => 0x0806, _ => (ushort)random.Next() });
                gateway.MacAddress.GetAddressBytes().CopyTo(frame, 0);
                if (frame.Length > 14 && i % 3 == 0)
                    frame[14] = 0x45;
            }

            gateway.Inject(frame);
        }

        var counters = session.Counters;
        var droppedBefore = counters.MalformedFrames + counters.IgnoredFrames;
        var reply = await session.CreatePinger(SimulatedGateway.GatewayAddress, DiagnosticsTestOptions.Ping()).SendAsync(Token);

        Assert.Equal(PingStatus.Success, reply.Status);
        // Every random frame was dropped, as malformed (runts, bad IPv4 checksums) or ignored (unknown types, non-Ethernet ARP);
        // the ARP exchange and the echo reply were not.
        Assert.Equal(Frames, counters.MalformedFrames + counters.IgnoredFrames - droppedBefore);
        Assert.True(counters.MalformedFrames > Frames / 4, $"only {counters.MalformedFrames} of {Frames} random frames were malformed");
    }

    private static byte[] Damage(string damage, SimulatedGateway gateway)
    {
        var to = gateway.MacAddress;
        const int ip = TestFrames.IPv4Offset;
        byte[] frame;
        switch (damage)
        {
            case "runt":
                return [1, 2, 3, 4, 5];
            case "ethernet header only":
                frame = TestFrames.EchoReply(to, 1, 1, new byte[8]);
                return frame[..14];
            case "truncated IPv4 header":
                frame = TestFrames.EchoReply(to, 1, 1, new byte[8]);
                return frame[..(ip + 12)];
            case "IPv4 total length past the frame":
                frame = TestFrames.Udp(to, 67, 68, new byte[300]);
                return frame[..100];
            case "wrong IPv4 header checksum":
                frame = TestFrames.EchoReply(to, 1, 1, new byte[8]);
                frame[ip + 8]--; // TTL changed, checksum not
                return frame;
            case "wrong UDP checksum":
                frame = TestFrames.Udp(to, 67, 68, new byte[300]);
                frame[^1] ^= 0x01;
                return frame;
            case "UDP length past the datagram":
                frame = TestFrames.Udp(to, 1000, 1001, new byte[16]);
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(ip + 20 + 4), 200);
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(ip + 20 + 6), 0); // no checksum, so only the length is wrong
                return frame;
            case "wrong ICMP checksum":
                frame = TestFrames.EchoReply(to, 1, 1, new byte[8]);
                frame[^1] ^= 0x01;
                return frame;
            case "truncated ARP":
                frame = new byte[14 + 10];
                to.GetAddressBytes().CopyTo(frame, 0);
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
                return frame;
            default:
                throw new ArgumentOutOfRangeException(nameof(damage), damage, null);
        }
    }
}
