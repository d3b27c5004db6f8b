using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// The attached verbs on two <c>vnet up</c> on one Open vSwitch-DPDK bridge (dpdkvhostuserclient ports with two queues
/// each, OVS steering what it sends to a port by hash), each TAP in a namespace of its own: after a known exchange
/// <c>stats --attach</c> equals OVS's port counters and the namespace's interface counters, and
/// <c>channels --attach --combined</c> decides over how many pairs OVS spreads the flows.
/// </summary>
[Trait("Peer", "Ovs")]
[Trait("Peer", "Kernel")]
public sealed class UpOvsAttachTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void StatsAttachEqualsOvsPortCountersAndTheInterfacesAndChannelsAttachSpreadsFlowsOverBothPairs()
    {
        KernelPeerRequirement.EnsureAvailable();
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        string socketA = ovs.AddClientPort("vu0", "other_config:tx-steering=hash");
        string socketB = ovs.AddClientPort("vu1", "other_config:tx-steering=hash");
        using NetworkNamespace a = NetworkNamespace.Create();
        using NetworkNamespace b = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tapA = $"oa{suffix}";
        string tapB = $"ob{suffix}";
        string nameA = $"ovsa-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{suffix}";
        using UpProcess upA = UpProcess.Start("--netns", a.Name, "--tap", tapA, "--name", nameA, "--queues", "2", "--vhost-user", socketA, "--vhost-user-client");
        using UpProcess upB = UpProcess.Start("--netns", b.Name, "--tap", tapB, "--queues", "2", "--vhost-user", socketB, "--vhost-user-client");
        ovs.WaitForLinkUp("vu0", Patience);
        ovs.WaitForLinkUp("vu1", Patience);

        // No IPv6 on the TAPs: the kernel's neighbour discovery and MLD reports would keep the counters moving.
        a.ExecInside($"sysctl -qw net.ipv6.conf.{tapA}.disable_ipv6=1");
        b.ExecInside($"sysctl -qw net.ipv6.conf.{tapB}.disable_ipv6=1");
        a.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {tapA}");
        b.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tapB}");

        // A known exchange: the kernel in A pings the kernel in B through both drivers and the bridge. Then, once nothing
        // moves, what A's driver sent equals what OVS took from port vu0, what it received what OVS put into vu0, and what
        // the service moved equals what A's interface counted.
        a.ExecInside($"ping -c 10 -i 0.2 -W 5 {NetworkNamespace.DriverAddress}");
        Counters settled = default;
        Eventually(() =>
        {
            settled = Read(ovs, nameA, a, tapA);
            return settled.Agree;
        }, () => $"stats --attach to equal OVS's and the interface's counters: {settled}");
        Assert.True(settled.DeviceTx >= 10 && settled.DeviceRx >= 10, $"10 pings made {settled}.");

        // ovs-vsctl's view (the Interface table's statistics column, refreshed every few seconds) catches up to the same.
        // The counters are read again each time: the kernels' ARP may confirm a neighbour meanwhile (one frame each way).
        Counters latest = settled;
        Eventually(
            () =>
            {
                latest = Read(ovs, nameA, a, tapA);
                return latest.Agree && InterfaceStatistics(ovs, "vu0") == (latest.DeviceTx, latest.DeviceRx);
            },
            () => $"ovs-vsctl get Interface vu0 statistics: {InterfaceStatistics(ovs, "vu0")} vs {latest}");

        // channels: both pairs active, OVS spreads 32 UDP flows (distinct source ports) over both; with one pair active
        // OVS uses only the one enabled queue, and with two again both.
        JsonElement channels = UpAttachTests.Json(UpAttachTests.Vnet("channels", "--attach", nameA, "--json"));
        Assert.Equal((2, 2), (channels.GetProperty("setUp").GetInt32(), channels.GetProperty("combined").GetInt32()));
        long[] two = UpAttachTests.ReceivedPerPair(nameA, b, NetworkNamespace.KernelAddress);
        Assert.True(two[0] > 0 && two[1] > 0, $"With two pairs active the flows arrived as [{string.Join(", ", two)}].");
        Assert.Equal(1, UpAttachTests.Json(UpAttachTests.Vnet("channels", "--attach", nameA, "--combined", "1", "--json")).GetProperty("combined").GetInt32());
        long[] one = UpAttachTests.ReceivedPerPair(nameA, b, NetworkNamespace.KernelAddress);
        Assert.True(one[0] >= 32 && one[1] == 0, $"With one pair active the flows arrived as [{string.Join(", ", one)}].");
        Assert.Equal(2, UpAttachTests.Json(UpAttachTests.Vnet("channels", "--attach", nameA, "--combined", "2", "--json")).GetProperty("combined").GetInt32());
        long[] again = UpAttachTests.ReceivedPerPair(nameA, b, NetworkNamespace.KernelAddress);
        Assert.True(again[0] > 0 && again[1] > 0, $"With two pairs active again the flows arrived as [{string.Join(", ", again)}].");

        // After all of it the counters still agree.
        Eventually(() =>
        {
            settled = Read(ovs, nameA, a, tapA);
            return settled.Agree;
        }, () => $"stats --attach to equal OVS's and the interface's counters: {settled}");

        Assert.Equal(0, upA.Stop());
        Assert.Equal(0, upB.Stop());
    }

    // A's counters: its driver's (summed over pairs), its service's, OVS's port vu0 (rx: what OVS took from the driver),
    // and A's interface.
    private readonly record struct Counters(long DeviceRx, long DeviceTx, long ToKernel, long FromKernel, long OvsRx, long OvsTx, long InterfaceRx, long InterfaceTx)
    {
        public bool Agree => DeviceTx == OvsRx && DeviceRx == OvsTx && ToKernel == InterfaceRx && FromKernel == InterfaceTx;
    }

    private static Counters Read(OvsDpdkSwitch ovs, string name, NetworkNamespace ns, string tap)
    {
        JsonElement[] pairs = [.. UpAttachTests.Json(UpAttachTests.Vnet("stats", "--attach", name, "--json")).GetProperty("pairs").EnumerateArray()];
        long Sum(string field) => pairs.Sum(p => p.GetProperty(field).GetInt64());
        OvsPortStatistics port = ovs.GetPortStatistics("vu0") ?? throw new InvalidOperationException("OVS reports no counters for vu0");
        (long rx, long tx) = UpAttachTests.InterfacePackets(ns, tap);
        return new Counters(Sum("rxPackets"), Sum("txPackets"), Sum("toKernelFrames"), Sum("fromKernelFrames"), port.RxPackets, port.TxPackets, rx, tx);
    }

    // `ovs-vsctl get Interface PORT statistics`: {rx_packets=N, tx_packets=N, ...}.
    private static (long Rx, long Tx) InterfaceStatistics(OvsDpdkSwitch ovs, string port)
    {
        string text = ovs.Vsctl("get", "Interface", port, "statistics");
        long Field(string key)
        {
            System.Text.RegularExpressions.Match m = System.Text.RegularExpressions.Regex.Match(text, $@"\b{key}=(\d+)");
            return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
        }

        return (Field("rx_packets"), Field("tx_packets"));
    }

    private static void Eventually(Func<bool> condition, Func<string> what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what()}.");
            Thread.Sleep(250);
        }
    }
}
