using System.Security.Cryptography;
using System.Text.Json.Nodes;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.IntegrationTests.VhostUser;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// Two <c>vnet up</c> on one Open vSwitch-DPDK bridge (dpdkvhostuserclient ports: each driver listens, OVS connects),
/// each TAP in a namespace of its own: the kernel's ARP, ICMP, IPv6 neighbour discovery and ICMPv6, TCP streams each way
/// with SHA-256 compared (the kernel's offloads on and off), 10,000 UDP datagrams, jumbo frames at MTU 9000, two
/// queue pairs per interface that both carry flows, and pumps that allocate nothing per frame.
/// </summary>
[Trait("Peer", "Ovs")]
[Trait("Peer", "Kernel")]
public sealed class UpOvsTests
{
    // 256 MiB each way: at the 0.6 Gbit/s these two-core machines give (docs/PERFORMANCE.md) a few seconds per stream.
    private const int StreamBytes = 256 << 20;

    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(300);

    [Theory]
    [InlineData("on")]
    [InlineData("off")]
    public void TwoKernelsTalkArpIcmpIpv6AndTcpThroughTwoVnetUpOnOneOvsBridge(string offloads)
    {
        using Bridge bridge = Bridge.Start([], "--offloads", offloads);
        (NetworkNamespace a, NetworkNamespace b) = (bridge.A, bridge.B);
        a.IpInside($"addr add {NetworkNamespace.KernelAddress6}/64 dev {bridge.TapA} nodad");
        b.IpInside($"addr add {NetworkNamespace.DriverAddress6}/64 dev {bridge.TapB} nodad");

        // ARP, then ICMP; neighbour discovery, then ICMPv6 (ExecInside fails the test on a non-zero exit).
        a.ExecInside($"ping -c 3 -W 5 {NetworkNamespace.DriverAddress}");
        string macB = b.IpInside($"-br link show {bridge.TapB}").Split(' ', StringSplitOptions.RemoveEmptyEntries)[2];
        Assert.Contains(macB, a.IpInside($"neigh show {NetworkNamespace.DriverAddress}"), StringComparison.Ordinal);
        b.ExecInside($"ping -6 -c 3 -W 5 {NetworkNamespace.KernelAddress6}");
        Assert.Contains("lladdr", b.IpInside($"-6 neigh show {NetworkNamespace.KernelAddress6}"), StringComparison.Ordinal);

        (string sentAB, string receivedAB) = KernelTcpTransfer.Run(b, NetworkNamespace.DriverAddress, a, StreamBytes, TransferTimeout);
        Assert.Equal(sentAB, receivedAB);
        (string sentBA, string receivedBA) = KernelTcpTransfer.Run(a, NetworkNamespace.KernelAddress6, b, StreamBytes, TransferTimeout);
        Assert.Equal(sentBA, receivedBA);

        // With the kernel's offloads on, it hands its TSO segments over whole (frames longer than the MTU, which the
        // driver cuts, as OVS takes no TSO over vhost-user); with them off, it cuts them itself and none is longer.
        foreach (string tap in new[] { bridge.TapA, bridge.TapB })
        {
            long large = (long)bridge.Stats(tap)[0]!["fromKernelLarge"]!;
            Assert.True(offloads == "on" ? large > 0 : large == 0, $"{tap}: {large} frames longer than the MTU from the kernel with offloads {offloads}.");
        }

        bridge.StopBoth();
    }

    [Fact]
    public void TenThousandUdpDatagramsCrossFromOneNamespaceToTheOtherWithNoneLostOrDamaged()
    {
        using Bridge bridge = Bridge.Start([]);

        KernelUdpTransfer.Result result = KernelUdpTransfer.Run(bridge.B, NetworkNamespace.DriverAddress, bridge.A, 10_000, flows: 4, payload: 1000, TransferTimeout);

        Assert.True(result.Sent == 10_000 && result.Delivered == 10_000, $"{result} (at most {KernelUdpTransfer.Window} in flight)\n{bridge.UpA.Log}\n{bridge.UpB.Log}");
        Assert.Equal(0, result.Duplicates);
        Assert.Equal(0, result.Corrupted);
        bridge.StopBoth();
    }

    [Fact]
    public void JumboFramesOfMtu9000CrossTheBridgeOnceBothInterfacesAndBothOvsPortsTakeThem()
    {
        // OVS's ports take 9000 (mtu_request); the drivers size their buffers for it (the vhost-user frontend reports no
        // MTU, so --max-mtu is their bound); the kernel's interfaces are then set to 9000 as a user would.
        using Bridge bridge = Bridge.Start(["mtu_request=9000"], "--max-mtu", "9000", "--offloads", "off");
        Assert.Equal("9000", bridge.Ovs.Vsctl("get", "Interface", "vu0", "mtu").Trim());
        bridge.A.IpInside($"link set {bridge.TapA} mtu 9000");
        bridge.B.IpInside($"link set {bridge.TapB} mtu 9000");
        Assert.Contains("mtu 9000", bridge.A.IpInside($"link show {bridge.TapA}"), StringComparison.Ordinal);

        // 8972 bytes of ICMP payload behind 28 of headers, with don't-fragment: one 9000-byte IP packet or nothing.
        bridge.A.ExecInside($"ping -c 3 -W 5 -M do -s 8972 {NetworkNamespace.DriverAddress}");
        bridge.B.ExecInside($"ping -c 3 -W 5 -M do -s 8972 {NetworkNamespace.KernelAddress}");
        (string sent, string received) = KernelTcpTransfer.Run(bridge.B, NetworkNamespace.DriverAddress, bridge.A, 64 << 20, TransferTimeout);
        Assert.Equal(sent, received);

        // With the kernel's offloads off, every TCP segment is one frame: the sender's pump saw frames of ~9 KB.
        JsonObject pair = bridge.Stats(bridge.TapA)[0]!.AsObject();
        long frames = (long)pair["fromKernelFrames"]!;
        long bytes = (long)pair["fromKernelBytes"]!;
        Assert.True(bytes > frames * 4000, $"{frames} frames of {bytes} bytes from A's kernel: not jumbo frames.\n{bridge.UpA.Log}");
        bridge.StopBoth();
        Assert.DoesNotContain("refused", bridge.UpA.Log, StringComparison.Ordinal);
    }

    [Fact]
    public void BothQueuePairsOfEachInterfaceCarryFlowsWhenTheDeviceAndTheTapHaveTwoQueues()
    {
        // tx-steering=hash: OVS spreads what it sends to a port over the port's queues by flow (by default everything goes
        // to the queue of its one PMD thread); the kernel picks a TAP queue per flow by the socket's flow hash.
        using Bridge bridge = Bridge.Start(["other_config:tx-steering=hash"], "--queues", "2");

        KernelUdpTransfer.Result ab = KernelUdpTransfer.Run(bridge.B, NetworkNamespace.DriverAddress, bridge.A, 4000, flows: 16, payload: 600, TransferTimeout);
        KernelUdpTransfer.Result ba = KernelUdpTransfer.Run(bridge.A, NetworkNamespace.KernelAddress, bridge.B, 4000, flows: 16, payload: 600, TransferTimeout);
        Assert.True(ab.Delivered == 4000 && ba.Delivered == 4000, $"A to B: {ab}; B to A: {ba}");
        (string sent, string received) = KernelTcpTransfer.Run(bridge.B, NetworkNamespace.DriverAddress, bridge.A, 16 << 20, TransferTimeout);
        Assert.Equal(sent, received);

        foreach (string tap in new[] { bridge.TapA, bridge.TapB })
        {
            JsonArray pairs = bridge.Stats(tap);
            Assert.Equal(2, pairs.Count);
            foreach (JsonNode? pair in pairs)
            {
                // Each of 16 flows lands on either queue; all on one has odds of 2^-15 per direction.
                Assert.True((long)pair!["toKernelFrames"]! > 100 && (long)pair["fromKernelFrames"]! > 100, $"{tap}: {pairs.ToJsonString()}");
            }
        }

        bridge.StopBoth();
    }

    [Fact]
    public void ThePumpsOfBothInterfacesAllocateNoBytesPerFrameOverKernelTcpAndUdpTransfers()
    {
        // Each pump thread reads GC.GetAllocatedBytesForCurrentThread once per burst and reports what it allocated since
        // it started (stats: toKernelAllocatedBytes, fromKernelAllocatedBytes); a thread's counter sees only itself.
        using Bridge bridge = Bridge.Start([], "--offloads", "off");

        // Warm-up: every path of the measured transfers has run (and been compiled) once; the first-frame lines are logged.
        RunBothWays(bridge, 4 << 20, 1000);
        var before = new[] { Pumps(bridge, bridge.TapA), Pumps(bridge, bridge.TapB) };

        RunBothWays(bridge, 32 << 20, 5000);
        var after = new[] { Pumps(bridge, bridge.TapA), Pumps(bridge, bridge.TapB) };

        for (int i = 0; i < 2; i++)
        {
            long frames = after[i].Frames - before[i].Frames;
            string report = $"{(i == 0 ? bridge.TapA : bridge.TapB)}: {frames} frames; device-to-kernel pump {before[i].ToKernel} bytes at start-up and warm-up, " +
                $"{after[i].ToKernel - before[i].ToKernel} since; kernel-to-device pump {before[i].FromKernel}, {after[i].FromKernel - before[i].FromKernel} since";
            TestContext.Current.TestOutputHelper?.WriteLine(report);
            Assert.True(frames > 20_000, report);
            Assert.True(after[i].ToKernel == before[i].ToKernel && after[i].FromKernel == before[i].FromKernel, report);
        }

        bridge.StopBoth();
    }

    private static void RunBothWays(Bridge bridge, int tcpBytes, int datagrams)
    {
        (string sent, string received) = KernelTcpTransfer.Run(bridge.B, NetworkNamespace.DriverAddress, bridge.A, tcpBytes, TransferTimeout);
        Assert.Equal(sent, received);
        (sent, received) = KernelTcpTransfer.Run(bridge.A, NetworkNamespace.KernelAddress, bridge.B, tcpBytes, TransferTimeout);
        Assert.Equal(sent, received);
        KernelUdpTransfer.Result udp = KernelUdpTransfer.Run(bridge.B, NetworkNamespace.DriverAddress, bridge.A, datagrams, flows: 4, payload: 1000, TransferTimeout);
        Assert.Equal(datagrams, udp.Delivered);
    }

    // Frames both ways and each pump thread's allocations, from the control socket as vnet stats reads them.
    private static (long Frames, long ToKernel, long FromKernel) Pumps(Bridge bridge, string tap)
    {
        JsonObject pair = bridge.Stats(tap)[0]!.AsObject();
        return ((long)pair["toKernelFrames"]! + (long)pair["fromKernelFrames"]!, (long)pair["toKernelAllocatedBytes"]!, (long)pair["fromKernelAllocatedBytes"]!);
    }

    /// <summary>
    /// The bridge with its two ports (vu0 and vu1, dpdkvhostuserclient, each with <c>portSettings</c>), two namespaces,
    /// and a <c>vnet up</c> on each port with <c>upArguments</c>; both links up in OVS, IPv4 addresses 10.77.0.1 (A) and
    /// 10.77.0.2 (B). Dispose takes it all down in reverse.
    /// </summary>
    private sealed class Bridge : IDisposable
    {
        private readonly List<IDisposable> _owned = [];

        private Bridge()
        {
            string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
            TapA = $"ua{suffix}";
            TapB = $"ub{suffix}";
        }

        public OvsDpdkSwitch Ovs { get; private set; } = null!;

        public NetworkNamespace A { get; private set; } = null!;

        public NetworkNamespace B { get; private set; } = null!;

        public UpProcess UpA { get; private set; } = null!;

        public UpProcess UpB { get; private set; } = null!;

        public string TapA { get; }

        public string TapB { get; }

        public static Bridge Start(string[] portSettings, params string[] upArguments)
        {
            KernelPeerRequirement.EnsureAvailable();
            var bridge = new Bridge();
            try
            {
                bridge.Ovs = bridge.Own(OvsDpdkSwitch.Start());
                string socketA = bridge.Ovs.AddClientPort("vu0", portSettings);
                string socketB = bridge.Ovs.AddClientPort("vu1", portSettings);
                bridge.A = bridge.Own(NetworkNamespace.Create());
                bridge.B = bridge.Own(NetworkNamespace.Create());
                bridge.UpA = bridge.Own(UpProcess.Start(["--netns", bridge.A.Name, "--tap", bridge.TapA, "--vhost-user", socketA, "--vhost-user-client", .. upArguments]));
                bridge.UpB = bridge.Own(UpProcess.Start(["--netns", bridge.B.Name, "--tap", bridge.TapB, "--vhost-user", socketB, "--vhost-user-client", .. upArguments]));
                bridge.Ovs.WaitForLinkUp("vu0", TimeSpan.FromSeconds(30));
                bridge.Ovs.WaitForLinkUp("vu1", TimeSpan.FromSeconds(30));
                bridge.A.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {bridge.TapA}");
                bridge.B.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {bridge.TapB}");
                return bridge;
            }
            catch
            {
                bridge.Dispose();
                throw;
            }
        }

        /// <summary>The <c>stats</c> control command's per-pair counters of the instance serving <paramref name="tap"/>.</summary>
        public JsonArray Stats(string tap) =>
            ControlClient.Ask(ControlServer.DefaultDirectory, tap, new() { ["command"] = "stats" })["pairs"]!.AsArray();

        /// <summary>Stops both with SIGTERM: each exits with 0 having dropped nothing.</summary>
        public void StopBoth()
        {
            Assert.Equal(0, UpA.Stop());
            Assert.Equal(0, UpB.Stop());
            Assert.Contains("drops: none", UpA.Log, StringComparison.Ordinal);
            Assert.Contains("drops: none", UpB.Log, StringComparison.Ordinal);
        }

        public void Dispose()
        {
            for (int i = _owned.Count - 1; i >= 0; i--)
            {
                _owned[i].Dispose();
            }
        }

        private T Own<T>(T disposable)
            where T : IDisposable
        {
            _owned.Add(disposable);
            return disposable;
        }
    }
}
