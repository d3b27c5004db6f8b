using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet rss --attach</c> on a running <c>vnet up</c> whose device is QEMU's virtio-net with <c>mq=on,rss=on,hash=on</c>
/// on a multi-queue TAP (QEMU 7.2 steers in software: it hashes each frame and moves it to the receive queue the table
/// names), two queue pairs, the kernel of another namespace sending UDP flows to the kernel on the service's TAP. The
/// table set through the control socket decides where QEMU puts a flow, as the per-pair counters of
/// <c>stats --attach</c> show.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpRssAttachTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    // Datagrams per flow and measurement: enough that a stray frame (an ARP, an ICMP error) cannot pass for the flow.
    private const int Datagrams = 20;

    private const ushort DestinationPort = 7777;

    [Fact]
    public void RssAttachChangesTheTableQemuSteersByAndAFlowMovesFromOnePairToTheOther()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tap = $"vr{suffix}";
        string qemuTap = $"vs{suffix}";
        string name = $"rss-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{suffix}";
        string config = Path.Combine(Path.GetTempPath(), $"vnet-{name}.toml");
        File.WriteAllText(config, $"""
            [device]
            mac = "52:54:00:c0:ff:ee"
            queue_pairs = 2
            [platform]
            netdev = "tap={qemuTap}"
            device_properties = "rss=on,hash=on"
            namespace = "{near.Name}"
            tap = "{tap}"
            name = "{name}"
            """);
        try
        {
            using UpProcess up = UpProcess.Start("--config", config);
            UpAttachTests.Run("ip", $"link set {qemuTap} netns {far.Name}");
            far.IpInside($"link set {qemuTap} addrgenmode none");
            far.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {qemuTap}");
            far.IpInside($"link set {qemuTap} up");
            near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");
            far.IpInside($"neigh replace {NetworkNamespace.DriverAddress} lladdr 52:54:00:c0:ff:ee dev {qemuTap} nud permanent");

            // The device offers RSS; the instance leaves it off until told.
            JsonElement off = UpAttachTests.Json(UpAttachTests.Vnet("rss", "--attach", name, "--json"));
            Assert.False(off.GetProperty("enabled").GetBoolean());
            Assert.Equal(40, off.GetProperty("maxKeySize").GetInt32());

            // ethtool -X equal 2: entry i → pair i mod 2. Two flows whose Toeplitz hashes (the default key, UDP over
            // IPv4: addresses and ports) fall on different entries land on the pairs the table names.
            JsonElement equal = UpAttachTests.Json(UpAttachTests.Vnet("rss", "--attach", name, "--equal", "2", "--json"));
            Assert.True(equal.GetProperty("enabled").GetBoolean());
            var spread = RssConfiguration.Spread(2, 128);
            Assert.Equal(spread.IndirectionTable.ToArray().Select(q => (int)q), equal.GetProperty("indirectionTable").EnumerateArray().Select(e => e.GetInt32()));
            ushort toZero = FlowFor(spread, 0);
            ushort toOne = FlowFor(spread, 1);
            AssertLandsOn(name, far, toZero, 0);
            AssertLandsOn(name, far, toOne, 1);

            // ethtool -X weight 0 1: every entry names pair 1, so the flow that was on pair 0 moves there; weight 1 0
            // moves both back to pair 0.
            JsonElement toPairOne = UpAttachTests.Json(UpAttachTests.Vnet("rss", "--attach", name, "--weight", "0", "1", "--json"));
            Assert.All(toPairOne.GetProperty("indirectionTable").EnumerateArray(), e => Assert.Equal(1, e.GetInt32()));
            AssertLandsOn(name, far, toZero, 1);
            UpAttachTests.Json(UpAttachTests.Vnet("rss", "--attach", name, "--weight", "1", "0", "--json"));
            AssertLandsOn(name, far, toOne, 0);
            AssertLandsOn(name, far, toZero, 0);

            // QEMU's TAP backend hands the far kernel's partial UDP checksums on (NEEDS_CSUM), and the driver passes them up
            // to the near kernel as they are: counted as checksums left to the device, once per burst.
            long deviceChecksums = UpAttachTests.Json(UpAttachTests.Vnet("stats", "--attach", name, "--json")).GetProperty("queues").EnumerateArray()
                .Where(q => q.GetProperty("name").GetString()!.StartsWith("receiveq", StringComparison.Ordinal)).Sum(q => q.GetProperty("checksumsByDevice").GetInt64());
            Assert.True(deviceChecksums >= 5 * Datagrams, $"The receive queues counted {deviceChecksums} checksums left to the device for {5 * Datagrams} UDP datagrams.");

            // The text form is ethtool -x's.
            Assert.Contains($"RX flow hash indirection table for {name} with 2 RX ring(s):", UpAttachTests.Vnet("rss", "--attach", name), StringComparison.Ordinal);

            // Bad input: weights beside --equal, more weights than pairs, all zero: one line, exit 2 or 1; the table stays.
            VnetProcess.Result both = VnetProcess.Run("rss", "--attach", name, "--equal", "2", "--weight", "1", "1");
            Assert.Equal(2, both.ExitCode);
            Assert.Single(both.StandardError.Trim().Split('\n'));
            VnetProcess.Result tooMany = VnetProcess.Run("rss", "--attach", name, "--weight", "1", "1", "1");
            Assert.Equal(1, tooMany.ExitCode);
            Assert.Single(tooMany.StandardError.Trim().Split('\n'));
            VnetProcess.Result zero = VnetProcess.Run("rss", "--attach", name, "--weight", "0", "0");
            Assert.NotEqual(0, zero.ExitCode);
            Assert.Single(zero.StandardError.Trim().Split('\n'));
            Assert.All(UpAttachTests.Json(UpAttachTests.Vnet("rss", "--attach", name, "--json")).GetProperty("indirectionTable").EnumerateArray(), e => Assert.Equal(0, e.GetInt32()));

            Assert.Equal(0, up.Stop());
        }
        finally
        {
            File.Delete(config);
        }
    }

    // A source port whose flow (far kernel → near kernel, UDP to DestinationPort) the table sends to `pair`.
    private static ushort FlowFor(RssConfiguration rss, int pair)
    {
        for (ushort port = 30000; port < 31000; port++)
        {
            uint hash = ToeplitzHash.ComputeAddressesAndPorts(rss.Key.Span, IPAddress.Parse(NetworkNamespace.KernelAddress), IPAddress.Parse(NetworkNamespace.DriverAddress), port, DestinationPort);
            if (rss.QueueFor(hash) == pair)
            {
                return port;
            }
        }

        throw new InvalidOperationException($"no source port from 30000 to 30999 hashes to pair {pair}");
    }

    // Sends Datagrams datagrams of the flow from `sourcePort`, and checks with stats --attach that pair `pair` received
    // them (at least that many more frames) and the other pair fewer than that.
    private static void AssertLandsOn(string name, NetworkNamespace far, ushort sourcePort, int pair)
    {
        long[] before = UpAttachTests.PairPackets(name);
        Assert.True(far.Run(() =>
        {
            using var socket = new UdpClient(new IPEndPoint(IPAddress.Parse(NetworkNamespace.KernelAddress), sourcePort));
            for (int i = 0; i < Datagrams; i++)
            {
                socket.Send([1, 2, 3, (byte)i], new IPEndPoint(IPAddress.Parse(NetworkNamespace.DriverAddress), DestinationPort));
            }

            return true;
        }).Wait(Patience));
        long[] delta = [0, 0];
        var clock = Stopwatch.StartNew();
        while (delta.Sum() < Datagrams && clock.Elapsed < Patience)
        {
            Thread.Sleep(200);
            delta = [.. UpAttachTests.PairPackets(name).Zip(before, (a, b) => a - b)];
        }

        Assert.True(delta[pair] >= Datagrams && delta[1 - pair] < Datagrams,
            $"The flow from port {sourcePort} should have arrived on pair {pair}; the pairs received [{string.Join(", ", delta)}].");
    }
}
