using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// The ethtool-style verbs with <c>--attach</c> on a running service, as the tool runs them (a child process asking the
/// instance's control socket): QEMU's virtio-net on a TAP backend in one namespace, the kernel on the service's TAP in
/// another. What the verbs change shows where QEMU shows it (QMP <c>query-rx-filter</c>), in the kernel (the
/// interface's MTU) or in where frames arrive (the active queue pairs); what <c>stats</c> reports equals the
/// namespaces' interface counters. <c>vnet up --config</c> applies the file's queue pairs and MAC, with a flag over it.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpAttachTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void AttachedVerbsChangeTheRunningDeviceAsQemuAndTheKernelSeeItAndStatsEqualTheInterfaceCounters()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = far.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        far.MoveTapIn(1500, net.MacAddress.Span);
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tap = $"va{suffix}";
        string name = $"attach-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{suffix}";
        var log = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        Exception? failure = null;
        var options = new TapServiceOptions { TapName = tap, Namespace = near.Name, InstanceName = name, ControlDirectory = ControlServer.DefaultDirectory };
        var service = new Thread(() =>
        {
            try
            {
                TapService.Run(new DeviceLink(net), options, log.Enqueue, stop.Token);
            }
            catch (Exception e)
            {
                failure = e;
            }
        })
        { IsBackground = true };
        service.Start();
        try
        {
            Eventually(() => log.Any(l => l.Contains(" carries traffic", StringComparison.Ordinal)) || failure is not null, "the service to start", log);
            Assert.Null(failure);
            near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");

            // vlan: frames tagged with id 100 pass QEMU's VLAN filter to the kernel only once the id is in the running
            // device's table (promiscuous mode is still off: QEMU's promiscuous mode would pass every tag).
            byte[] mac = net.MacAddress.ToArray();
            Assert.Equal(0, TaggedFramesThrough(far, near, tap, mac, 3, TimeSpan.FromSeconds(2)));
            JsonElement vlan = Json(Vnet("vlan", "--attach", name, "--add", "100", "--json"));
            Assert.Equal([100], vlan.GetProperty("vlans").EnumerateArray().Select(v => v.GetInt32()));
            Assert.Contains(100, Filter(board).GetProperty("vlan-table").EnumerateArray().Select(v => v.GetInt32()));
            Assert.Equal(3, TaggedFramesThrough(far, near, tap, mac, 3, Patience));

            // filter: promiscuous mode on the running device, as QEMU's device model holds it.
            Assert.False(Filter(board).GetProperty("promiscuous").GetBoolean());
            JsonElement filter = Json(Vnet("filter", "--attach", name, "--promisc", "on", "--json"));
            Assert.True(filter.GetProperty("modes").GetProperty("promisc").GetBoolean());
            Assert.True(Filter(board).GetProperty("promiscuous").GetBoolean());
            Assert.Contains($"{name}: link/ether", Vnet("filter", "--attach", name), StringComparison.Ordinal);

            // mtu: the interface's MTU within the device's bounds; beyond them one line and exit 1, the MTU unchanged.
            Assert.Equal(1400, Json(Vnet("mtu", "--attach", name, "--set", "1400", "--json")).GetProperty("mtu").GetInt32());
            Assert.Contains("mtu 1400", near.IpInside($"link show {tap}"), StringComparison.Ordinal);
            VnetProcess.Result tooLarge = VnetProcess.Run("mtu", "--attach", name, "--set", "9000");
            Assert.Equal(1, tooLarge.ExitCode);
            Assert.Equal($"vnet: error: {name}: mtu must be 68 to 1500 (what the driver's buffers were sized for: vnet up --max-mtu); got 9000", tooLarge.StandardError.Trim());
            Assert.Contains("mtu 1400", near.IpInside($"link show {tap}"), StringComparison.Ordinal);

            // offloads, channels, rss, dump: read from the running device, named after the instance.
            Assert.StartsWith($"Features for {name}:", Vnet("offloads", "--attach", name), StringComparison.Ordinal);
            Assert.Equal(1, Json(Vnet("channels", "--attach", name, "--json")).GetProperty("combined").GetInt32());
            Assert.False(Json(Vnet("rss", "--attach", name, "--json")).GetProperty("enabled").GetBoolean());
            Assert.Equal(2, Json(Vnet("dump", "--attach", name, "--json")).GetProperty("queues").GetArrayLength());

            // stats: after a known exchange (the kernel pings the far kernel through the driver), the service's counters
            // equal the near interface's and the device's equal what the far interface counted (promiscuous, so QEMU
            // filters nothing), once the traffic has settled.
            Counters before = Quiet(name, far, near, tap);
            near.ExecInside($"ping -c 10 -i 0.2 -W 5 {NetworkNamespace.KernelAddress}");
            Counters after = default;
            Eventually(() =>
            {
                after = Read(name, far, near, tap);
                return after.ToKernel == after.NearRx && after.FromKernel == after.NearTx &&
                    after.DeviceTx - before.DeviceTx == after.FarRx - before.FarRx && after.DeviceRx - before.DeviceRx == after.FarTx - before.FarTx;
            }, "stats --attach to equal the interfaces' counters", log);
            Assert.True(after.DeviceTx - before.DeviceTx >= 10, $"The device sent {after.DeviceTx - before.DeviceTx} frames for 10 pings.");
            Assert.True(after.DeviceRx - before.DeviceRx >= 10, $"The device received {after.DeviceRx - before.DeviceRx} frames for 10 replies.");
            Assert.Contains("queue_0_to_kernel_frames:", Vnet("stats", "--attach", name), StringComparison.Ordinal);

            // Bad input: one line, exit 1; a stale socket is removed, not trusted; the instance goes on answering.
            VnetProcess.Result missing = VnetProcess.Run("stats", "--attach", $"{name}-missing");
            Assert.Equal(1, missing.ExitCode);
            Assert.Equal($"vnet: error: no instance '{name}-missing' is running (no control socket /run/vnet/{name}-missing.sock)", missing.StandardError.Trim());
            string stale = ControlServer.PathFor(ControlServer.DefaultDirectory, $"{name}-stale");
            UpControlTests.LeaveStaleSocket(stale);
            VnetProcess.Result staleResult = VnetProcess.Run("vlan", "--attach", $"{name}-stale");
            Assert.Equal(1, staleResult.ExitCode);
            Assert.Contains("removed its stale control socket", staleResult.StandardError, StringComparison.Ordinal);
            Assert.Single(staleResult.StandardError.Trim().Split('\n'));
            Assert.False(File.Exists(stale), "The stale socket was trusted.");
            VnetProcess.Result machineOption = VnetProcess.Run("channels", "--attach", name, "--queues", "2");
            Assert.Equal(2, machineOption.ExitCode);
            Assert.Single(machineOption.StandardError.Trim().Split('\n'));
            Assert.True(Json(Vnet("vlan", "--attach", name, "--json")).GetProperty("vlans").GetArrayLength() == 1);
        }
        finally
        {
            stop.Cancel();
            Assert.True(service.Join(Patience), "The service did not stop.");
        }

        Assert.Null(failure);
        Assert.False(File.Exists(ControlServer.PathFor(ControlServer.DefaultDirectory, name)), "The control socket was left behind.");
    }

    [Fact]
    public void UpWithAConfigFileAppliesItsQueuePairsAndMacAndChannelsAttachMovesFlowsBetweenThePairs()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tap = $"vc{suffix}";
        string qemuTap = $"vq{suffix}";
        string name = $"config-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{suffix}";
        string config = Path.Combine(Path.GetTempPath(), $"vnet-{name}.toml");
        File.WriteAllText(config, $"""
            [device]
            mac = "52:54:00:c0:ff:ee"
            queue_pairs = 2
            [platform]
            netdev = "tap={qemuTap}"
            namespace = "{near.Name}"
            tap = "from-the-file"
            name = "{name}"
            """);
        try
        {
            // --tap on the command line wins over the file's tap.
            using UpProcess up = UpProcess.Start("--config", config, "--tap", tap);

            // QEMU made its multi-queue TAP; moved into the far namespace it is the kernel there.
            Run("ip", $"link set {qemuTap} netns {far.Name}");
            far.IpInside($"link set {qemuTap} addrgenmode none");
            far.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {qemuTap}");
            far.IpInside($"link set {qemuTap} up");
            near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");
            far.IpInside($"neigh replace {NetworkNamespace.DriverAddress} lladdr 52:54:00:c0:ff:ee dev {qemuTap} nud permanent");

            Assert.Contains("link/ether 52:54:00:c0:ff:ee", near.IpInside($"link show {tap}"), StringComparison.Ordinal);
            JsonElement channels = Json(Vnet("channels", "--attach", name, "--json"));
            Assert.Equal((2, 2), (channels.GetProperty("setUp").GetInt32(), channels.GetProperty("combined").GetInt32()));

            // One pair active: QEMU stops using the TAP's second queue, so every flow arrives on pair 0.
            Assert.Equal(1, Json(Vnet("channels", "--attach", name, "--combined", "1", "--json")).GetProperty("combined").GetInt32());
            long[] one = ReceivedPerPair(name, far);
            Assert.True(one[0] >= 32 && one[1] == 0, $"With one pair active the flows arrived as [{string.Join(", ", one)}].");

            // Both active again: the TAP's flow steering spreads the same flows over both pairs.
            Assert.Equal(2, Json(Vnet("channels", "--attach", name, "--combined", "2", "--json")).GetProperty("combined").GetInt32());
            long[] two = ReceivedPerPair(name, far);
            Assert.True(two[0] > 0 && two[1] > 0, $"With two pairs active the flows arrived as [{string.Join(", ", two)}].");

            Assert.Equal(0, up.Stop());
        }
        finally
        {
            File.Delete(config);
        }
    }

    internal static string Vnet(params string[] arguments)
    {
        VnetProcess.Result result = VnetProcess.Run(arguments);
        Assert.True(result.ExitCode == 0, $"vnet {string.Join(' ', arguments)} exited with {result.ExitCode}:\n{result.StandardError}");
        return result.StandardOutput;
    }

    internal static JsonElement Json(string text)
    {
        using JsonDocument document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    // Sends `count` frames tagged with VLAN 100 to the driver's MAC from a packet socket on the far kernel's TAP, and
    // counts those the near kernel's TAP receives (tagged, or with the tag taken off by the kernel) within `wait`.
    private static int TaggedFramesThrough(NetworkNamespace far, NetworkNamespace near, string tap, byte[] mac, int count, TimeSpan wait)
    {
        byte[] marker = RandomNumberGenerator.GetBytes(16);
        byte[] frame = new byte[64];
        mac.CopyTo(frame, 0);
        NetworkNamespace.KernelMac.CopyTo(frame, 6);
        frame[12] = 0x81;
        frame[13] = 0x00;
        frame[14] = 0x00;
        frame[15] = 100;
        frame[16] = 0x88; // IEEE 802 local experimental EtherType 0x88b5
        frame[17] = 0xb5;
        marker.CopyTo(frame, 18);
        using var listening = new ManualResetEventSlim();
        Task<int> receiving = near.Run(() =>
        {
            using PacketSocket socket = PacketSocket.Open(tap);
            listening.Set();
            byte[] buffer = new byte[2048];
            int seen = 0;
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < wait && seen < count)
            {
                int length = socket.Receive(buffer, TimeSpan.FromMilliseconds(100));
                if (length > 0 && buffer.AsSpan(0, length).IndexOf(marker) >= 0)
                {
                    seen++;
                }
            }

            return seen;
        });
        Assert.True(listening.Wait(Patience), "The near packet socket did not open.");
        Assert.True(far.Run(() =>
        {
            using PacketSocket socket = PacketSocket.Open(far.TapName);
            for (int i = 0; i < count; i++)
            {
                socket.Send(frame);
            }

            return true;
        }).Wait(Patience));
        Assert.True(receiving.Wait(Patience + wait), "The near packet socket never finished.");
        return receiving.Result;
    }

    private static JsonElement Filter(RiscvVirtBoard board) => board.Machine.Monitor.Execute("query-rx-filter")[0];

    // 32 UDP flows (distinct source ports) from the far kernel to the near one (at `destination`, the driver's address by
    // default); returns the frames each pair of instance `name` received meanwhile.
    internal static long[] ReceivedPerPair(string name, NetworkNamespace far, string destination = NetworkNamespace.DriverAddress)
    {
        long[] before = PairPackets(name);
        Assert.True(far.Run(() =>
        {
            for (int flow = 0; flow < 32; flow++)
            {
                // A socket of its own per flow: another source port, another flow hash.
                using var socket = new System.Net.Sockets.UdpClient(0);
                socket.Send([1, 2, 3, 4], new System.Net.IPEndPoint(System.Net.IPAddress.Parse(destination), 40000 + flow));
            }

            return true;
        }).Wait(Patience));
        long[] after = before;
        var clock = Stopwatch.StartNew();
        while (after.Sum() - before.Sum() < 32 && clock.Elapsed < Patience)
        {
            Thread.Sleep(200);
            after = PairPackets(name);
        }

        return [.. after.Zip(before, (a, b) => a - b)];
    }

    internal static long[] PairPackets(string name) =>
        [.. Json(Vnet("stats", "--attach", name, "--json")).GetProperty("pairs").EnumerateArray().Select(p => p.GetProperty("rxPackets").GetInt64())];

    private readonly record struct Counters(long DeviceRx, long DeviceTx, long ToKernel, long FromKernel, long NearRx, long NearTx, long FarRx, long FarTx);

    private static Counters Read(string name, NetworkNamespace far, NetworkNamespace near, string tap)
    {
        JsonElement stats = Json(Vnet("stats", "--attach", name, "--json"));
        JsonElement pair = stats.GetProperty("pairs")[0];
        (long nearRx, long nearTx) = InterfacePackets(near, tap);
        (long farRx, long farTx) = InterfacePackets(far, far.TapName);
        return new Counters(pair.GetProperty("rxPackets").GetInt64(), pair.GetProperty("txPackets").GetInt64(),
            pair.GetProperty("toKernelFrames").GetInt64(), pair.GetProperty("fromKernelFrames").GetInt64(), nearRx, nearTx, farRx, farTx);
    }

    // Counters read twice a second apart with nothing moving in between: no frame is between two of them.
    private static Counters Quiet(string name, NetworkNamespace far, NetworkNamespace near, string tap)
    {
        Counters last = Read(name, far, near, tap);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Patience)
        {
            Thread.Sleep(1000);
            Counters now = Read(name, far, near, tap);
            if (now == last)
            {
                return now;
            }

            last = now;
        }

        Assert.Fail("The interfaces never went quiet for a second.");
        return last;
    }

    internal static (long Rx, long Tx) InterfacePackets(NetworkNamespace ns, string device)
    {
        JsonElement link = Json(ns.IpInside($"-s -j link show dev {device}"))[0];
        JsonElement stats = link.TryGetProperty("stats64", out JsonElement s64) ? s64 : link.GetProperty("stats");
        return (stats.GetProperty("rx").GetProperty("packets").GetInt64(), stats.GetProperty("tx").GetProperty("packets").GetInt64());
    }

    internal static void Run(string program, string arguments)
    {
        using Process process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardError = true, UseShellExecute = false })!;
        string error = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(30_000), $"{program} {arguments} did not end.");
        Assert.True(process.ExitCode == 0, $"{program} {arguments}: {error}");
    }

    private static void Eventually(Func<bool> condition, string what, ConcurrentQueue<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what}.\n{string.Join('\n', log)}");
            Thread.Sleep(250);
        }
    }
}
