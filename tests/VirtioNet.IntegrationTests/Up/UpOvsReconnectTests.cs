using System.Net;
using System.Security.Cryptography;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// vhost-user reconnection under a running <c>vnet up</c> on Open vSwitch-DPDK: the port of one driver deleted
/// (<c>ovs-vsctl del-port</c>) and added again in the middle of a kernel TCP stream, as a switch administrator or a
/// restarted switch does. The same process and device carry on: the TAP's carrier goes off with the link and on again
/// when the same device is recovered on the new session (<see cref="VirtioNet.VhostUser.VhostUserOptions.AutoReconnect"/>),
/// and the stream completes with its SHA-256 intact. Both socket modes: a <c>dpdkvhostuserclient</c> port (the driver
/// listens, OVS connects again to the same socket) and a <c>dpdkvhostuser</c> port (OVS listens on a new socket at the
/// same path, the driver connects again).
/// </summary>
[Trait("Peer", "Ovs")]
[Trait("Peer", "Kernel")]
public sealed class UpOvsReconnectTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AnOvsPortDeletedAndAddedAgainMidStreamGetsTheSameRunningDriverBackAndTheStreamCompletesIntact(bool clientPort)
    {
        KernelPeerRequirement.EnsureAvailable();
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        string socketA = AddPort(ovs, "vu0", clientPort);
        string socketB = ovs.AddClientPort("vu1");
        using NetworkNamespace a = NetworkNamespace.Create();
        using NetworkNamespace b = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tapA = $"oa{suffix}";
        string tapB = $"ob{suffix}";
        string[] argumentsA = ["--netns", a.Name, "--tap", tapA, "--vhost-user", socketA, .. clientPort ? (string[])["--vhost-user-client"] : []];
        using UpProcess upA = UpProcess.Start(argumentsA);
        using UpProcess upB = UpProcess.Start("--netns", b.Name, "--tap", tapB, "--vhost-user", socketB, "--vhost-user-client");
        ovs.WaitForLinkUp("vu0", Patience);
        ovs.WaitForLinkUp("vu1", Patience);
        a.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {tapA}");
        b.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tapB}");
        a.ExecInside($"ping -c 2 -W 5 {NetworkNamespace.DriverAddress}");

        WatchedTcpTransfer transfer = WatchedTcpTransfer.Start(
            b.Run, IPAddress.Parse(NetworkNamespace.DriverAddress), a.Run, IPAddress.Parse(NetworkNamespace.DriverAddress), UpRestartTests.TransferBytes * 2, UpRestartTests.Timeout);
        long third = transfer.Bytes / 3;
        Assert.True(WatchedTcpTransfer.WaitFor(() => transfer.Received >= third || transfer.Failed, UpRestartTests.Timeout), $"the stream did not reach {third} bytes:\n{upA.Log}");

        ovs.Vsctl("del-port", ovs.Bridge, "vu0");
        Assert.True(upA.WaitForLog("link down", 1, Patience), $"vnet up did not see its link go down when the port was deleted:\n{upA.Log}");
        Assert.Contains("NO-CARRIER", a.IpInside($"link show {tapA}"), StringComparison.Ordinal);
        long whileDeleted = transfer.Received;

        Assert.Equal(socketA, AddPort(ovs, "vu0", clientPort));
        Assert.True(upA.WaitForLog("link up", 1, Patience), $"vnet up did not get its link back when the port was added again:\n{upA.Log}\n{ovs.Log}");
        ovs.WaitForLinkUp("vu0", Patience);
        Assert.DoesNotContain("NO-CARRIER", a.IpInside($"link show {tapA}"), StringComparison.Ordinal);
        Assert.True(WatchedTcpTransfer.WaitFor(() => transfer.Received > whileDeleted + (64 << 10) || transfer.Failed, UpRestartTests.Timeout), $"no data arrived after the port came back:\n{upA.Log}");

        (string sent, string received) = transfer.Finish(UpRestartTests.Timeout, () => upA.Log);
        Assert.Equal(sent, received);
        Assert.Equal(transfer.Bytes, transfer.Received);

        // One process, one device all along: it neither restarted nor recreated the TAP (adoption happens only at start).
        Assert.DoesNotContain("adopted TAP", upA.Log, StringComparison.Ordinal);
        Assert.Equal(0, upA.Stop());
        Assert.Equal(0, upB.Stop());
        Assert.DoesNotContain(tapA, a.IpInside("link show"), StringComparison.Ordinal);
    }

    private static string AddPort(OvsDpdkSwitch ovs, string name, bool client) => client ? ovs.AddClientPort(name) : ovs.AddServerPort(name);
}
