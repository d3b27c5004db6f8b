using System.Net;
using System.Security.Cryptography;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// Restart without data loss on Open vSwitch-DPDK: two <c>vnet up</c> on one bridge, a kernel TCP stream from one
/// namespace to the other, and the sending side's driver killed with SIGKILL twice in the middle of it. The TAP outlives
/// the driver, the restarted driver reaches the same OVS port and adopts the TAP, and the stream completes with its
/// SHA-256 intact. With dpdkvhostuser ports OVS listens and each driver connects; with dpdkvhostuserclient ports each
/// driver listens (<c>--vhost-user-client</c>), so a killed one leaves its socket file behind, which the next one finds
/// stale (nobody listens) and reuses, while a socket a running driver listens on is refused.
/// </summary>
[Trait("Peer", "Ovs")]
[Trait("Peer", "Kernel")]
public sealed class UpOvsRestartTests
{
    [Fact]
    public void AKernelTcpTransferAcrossAnOvsBridgeCompletesWithItsHashIntactAcrossTwoSigkillsOfOneDriver()
    {
        KernelPeerRequirement.EnsureAvailable();
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        string socketA = ovs.AddServerPort("vu0");
        string socketB = ovs.AddServerPort("vu1");
        using NetworkNamespace a = NetworkNamespace.Create();
        using NetworkNamespace b = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tapA = $"ra{suffix}";
        string tapB = $"rb{suffix}";
        string[] argumentsA = ["--netns", a.Name, "--tap", tapA, "--vhost-user", socketA];
        UpProcess upA = UpProcess.Start(argumentsA);
        try
        {
            using UpProcess upB = UpProcess.Start("--netns", b.Name, "--tap", tapB, "--vhost-user", socketB);
            ovs.WaitForLinkUp("vu0", TimeSpan.FromSeconds(30));
            ovs.WaitForLinkUp("vu1", TimeSpan.FromSeconds(30));
            a.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {tapA}");
            b.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tapB}");
            a.ExecInside($"ping -c 2 -W 5 {NetworkNamespace.DriverAddress}");

            WatchedTcpTransfer transfer = WatchedTcpTransfer.Start(
                b.Run, IPAddress.Parse(NetworkNamespace.DriverAddress), a.Run, IPAddress.Parse(NetworkNamespace.DriverAddress), UpRestartTests.TransferBytes * 4, UpRestartTests.Timeout);
            UpRestartTests.WriteReport("Open vSwitch-DPDK (dpdkvhostuser port)", UpRestartTests.KillTwice(transfer, ref upA, argumentsA, tapA));
            (string sent, string received) = transfer.Finish(UpRestartTests.Timeout, () => upA.Log);
            Assert.Equal(sent, received);

            Assert.Equal(0, upA.Stop());
            Assert.Equal(0, upB.Stop());
            Assert.DoesNotContain(tapA, a.IpInside("link show"), StringComparison.Ordinal);
        }
        finally
        {
            upA.Dispose();
        }
    }

    [Fact]
    public void AVnetUpListeningForAnOvsClientPortIsKilledTwiceMidStreamAndEachNewOneReusesTheStaleSocket()
    {
        KernelPeerRequirement.EnsureAvailable();
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        string socketA = ovs.AddClientPort("vu0");
        string socketB = ovs.AddClientPort("vu1");
        using NetworkNamespace a = NetworkNamespace.Create();
        using NetworkNamespace b = NetworkNamespace.Create();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tapA = $"ca{suffix}";
        string tapB = $"cb{suffix}";
        string[] argumentsA = ["--netns", a.Name, "--tap", tapA, "--vhost-user", socketA, "--vhost-user-client"];
        UpProcess upA = UpProcess.Start(argumentsA);
        try
        {
            using UpProcess upB = UpProcess.Start("--netns", b.Name, "--tap", tapB, "--vhost-user", socketB, "--vhost-user-client");
            ovs.WaitForLinkUp("vu0", TimeSpan.FromSeconds(30));
            ovs.WaitForLinkUp("vu1", TimeSpan.FromSeconds(30));
            a.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {tapA}");
            b.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tapB}");
            a.ExecInside($"ping -c 2 -W 5 {NetworkNamespace.DriverAddress}");

            // A second driver for the socket a running one listens on: one line, a non-zero exit, the first undisturbed.
            UpRestartTests.AssertOneErrorLine(
                VnetProcess.Run("up", "--name", $"cx{suffix}", "--netns", a.Name, "--tap", $"cx{suffix}", "--vhost-user", socketA, "--vhost-user-client"),
                "another process listens on that socket");

            WatchedTcpTransfer transfer = WatchedTcpTransfer.Start(
                b.Run, IPAddress.Parse(NetworkNamespace.DriverAddress), a.Run, IPAddress.Parse(NetworkNamespace.DriverAddress), UpRestartTests.TransferBytes * 4, UpRestartTests.Timeout);
            UpRestartTests.WriteReport("Open vSwitch-DPDK (dpdkvhostuserclient port, vnet listens)", UpRestartTests.KillTwice(transfer, ref upA, argumentsA, tapA));
            (string sent, string received) = transfer.Finish(UpRestartTests.Timeout, () => upA.Log);
            Assert.Equal(sent, received);

            Assert.Equal(0, upA.Stop());
            Assert.Equal(0, upB.Stop());
            Assert.DoesNotContain(tapA, a.IpInside("link show"), StringComparison.Ordinal);
            Assert.False(File.Exists(socketA), "a cleanly stopped vnet up left its listening socket behind");
        }
        finally
        {
            upA.Dispose();
        }
    }
}
