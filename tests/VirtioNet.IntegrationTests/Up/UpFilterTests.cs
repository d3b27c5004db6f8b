using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// The service in this process, so that the test holds QEMU's monitor: what the kernel is told about the TAP
/// (promiscuous, a multicast join, a MAC address, an MTU beyond the device's, an address to announce) reaches QEMU's virtio-net as QMP
/// <c>query-rx-filter</c> shows it, and QMP <c>set_link off</c>/<c>on</c> shows as NO-CARRIER and back on the TAP.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpFilterTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void TheKernelsPromiscuousFlagMulticastJoinMacAddressesAndCarrierReachTheDeviceAndBack()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = far.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        far.MoveTapInUnaddressed(1500);
        string tap = $"vf{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        var log = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        int exitCode = -1;
        Exception? failure = null;
        var service = new Thread(() =>
        {
            try
            {
                exitCode = TapService.Run(new DeviceLink(net), new TapServiceOptions { TapName = tap, Namespace = near.Name }, log.Enqueue, stop.Token);
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

            // The kernel's interface starts without promiscuous mode, and the device is told so.
            Eventually(() => !Filter(board).GetProperty("promiscuous").GetBoolean(), "promiscuous off at start", log);
            near.IpInside($"link set {tap} promisc on");
            Eventually(() => Filter(board).GetProperty("promiscuous").GetBoolean(), "promiscuous on", log);
            near.IpInside($"link set {tap} promisc off");
            Eventually(() => !Filter(board).GetProperty("promiscuous").GetBoolean(), "promiscuous off again", log);

            near.IpInside($"maddr add 01:00:5e:01:02:03 dev {tap}");
            Eventually(() => Filter(board).GetProperty("multicast-table").EnumerateArray().Any(m => m.GetString() == "01:00:5e:01:02:03"), "the multicast join in the MAC table", log);

            near.IpInside($"link set {tap} address 02:00:00:77:00:42");
            Eventually(() => Filter(board).GetProperty("main-mac").GetString() == "02:00:00:77:00:42", "the new MAC at the device", log);

            near.IpInside($"link set {tap} mtu 9000");
            Eventually(() => near.IpInside($"link show {tap}").Contains("mtu 1500", StringComparison.Ordinal), "an MTU beyond the device's set back", log);
            Assert.Contains(log, l => l.Contains("MTU 9000 refused", StringComparison.Ordinal));

            // GUEST_ANNOUNCE: QEMU's announce-self sets VIRTIO_NET_S_ANNOUNCE; the interface's address, learnt from the
            // kernel's address notification, is announced.
            near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");
            Thread.Sleep(1000);
            board.Machine.Monitor.Execute("announce-self", w =>
            {
                w.WriteNumber("initial", 50);
                w.WriteNumber("max", 550);
                w.WriteNumber("rounds", 1);
                w.WriteNumber("step", 100);
            });
            Eventually(() => log.Any(l => l.Contains($"announced {NetworkNamespace.DriverAddress}", StringComparison.Ordinal)), "the gratuitous ARP for the interface's address", log);
            Assert.True(net.Control.Announcements > 0, "The driver did not acknowledge the device's announcement.");

            board.SetLink(false);
            Eventually(() => near.IpInside($"link show {tap}").Contains("NO-CARRIER", StringComparison.Ordinal), "NO-CARRIER after set_link off", log);
            board.SetLink(true);
            Eventually(() => !near.IpInside($"link show {tap}").Contains("NO-CARRIER", StringComparison.Ordinal), "the carrier back after set_link on", log);
        }
        finally
        {
            stop.Cancel();
            Assert.True(service.Join(Patience), "The service did not stop.");
        }

        Assert.Null(failure);
        Assert.Equal(0, exitCode);
        Assert.DoesNotContain(tap, near.IpInside("link show"), StringComparison.Ordinal);
    }

    private static JsonElement Filter(RiscvVirtBoard board) => board.Machine.Monitor.Execute("query-rx-filter")[0];

    private static void Eventually(Func<bool> condition, string what, ConcurrentQueue<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what}.\n{string.Join('\n', log)}");
            Thread.Sleep(100);
        }
    }
}
