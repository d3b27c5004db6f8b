using System.Security.Cryptography;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// Two <c>vnet up</c> on one Open vSwitch-DPDK bridge (dpdkvhostuserclient ports: each driver listens, OVS connects),
/// each TAP in a namespace of its own: the kernel's ARP, ICMP, IPv6 neighbour discovery and ICMPv6, and TCP streams
/// each way with SHA-256 compared, with the kernel's offloads on and off.
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
        KernelPeerRequirement.EnsureAvailable();
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        string socketA = ovs.AddClientPort("vu0");
        string socketB = ovs.AddClientPort("vu1");
        using NetworkNamespace a = NetworkNamespace.Create();
        using NetworkNamespace b = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tapA = $"ua{suffix}";
        string tapB = $"ub{suffix}";
        using UpProcess upA = UpProcess.Start("--netns", a.Name, "--tap", tapA, "--vhost-user", socketA, "--vhost-user-client", "--offloads", offloads);
        using UpProcess upB = UpProcess.Start("--netns", b.Name, "--tap", tapB, "--vhost-user", socketB, "--vhost-user-client", "--offloads", offloads);
        ovs.WaitForLinkUp("vu0", TimeSpan.FromSeconds(30));
        ovs.WaitForLinkUp("vu1", TimeSpan.FromSeconds(30));
        a.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {tapA}");
        a.IpInside($"addr add {NetworkNamespace.KernelAddress6}/64 dev {tapA} nodad");
        b.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tapB}");
        b.IpInside($"addr add {NetworkNamespace.DriverAddress6}/64 dev {tapB} nodad");

        // ARP, then ICMP; neighbour discovery, then ICMPv6 (ExecInside fails the test on a non-zero exit).
        a.ExecInside($"ping -c 3 -W 5 {NetworkNamespace.DriverAddress}");
        string macB = b.IpInside($"-br link show {tapB}").Split(' ', StringSplitOptions.RemoveEmptyEntries)[2];
        Assert.Contains(macB, a.IpInside($"neigh show {NetworkNamespace.DriverAddress}"), StringComparison.Ordinal);
        b.ExecInside($"ping -6 -c 3 -W 5 {NetworkNamespace.KernelAddress6}");
        Assert.Contains("lladdr", b.IpInside($"-6 neigh show {NetworkNamespace.KernelAddress6}"), StringComparison.Ordinal);

        (string sentAB, string receivedAB) = KernelTcpTransfer.Run(b, NetworkNamespace.DriverAddress, a, StreamBytes, TransferTimeout);
        Assert.Equal(sentAB, receivedAB);
        (string sentBA, string receivedBA) = KernelTcpTransfer.Run(a, NetworkNamespace.KernelAddress6, b, StreamBytes, TransferTimeout);
        Assert.Equal(sentBA, receivedBA);

        Assert.Equal(0, upA.Stop());
        Assert.Equal(0, upB.Stop());
        Assert.Contains("drops: none", upA.Log, StringComparison.Ordinal);
        Assert.Contains("drops: none", upB.Log, StringComparison.Ordinal);
    }
}
