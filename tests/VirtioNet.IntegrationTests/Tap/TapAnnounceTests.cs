using System.Diagnostics;
using System.Net;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// VIRTIO_NET_F_GUEST_ANNOUNCE with the kernel as the peer that must learn from the announcement (virtio v1.2
/// §5.1.6.5.4): QEMU's <c>announce-self</c> sets VIRTIO_NET_S_ANNOUNCE, the driver sends a gratuitous ARP for its IPv4
/// address and an unsolicited neighbour advertisement for its IPv6 one, and the kernel on the other side of the TAP puts
/// both into its neighbour tables with the driver's MAC. The kernel plays the router in front of a migrated machine:
/// <c>arp_accept</c>, and for IPv6 <c>forwarding</c> with <c>accept_untracked_na</c> (RFC 9131: only routers create
/// an entry from an unsolicited advertisement). It drops a frame whose checksum, hop limit or option is wrong, so an
/// entry appears only for a well-formed announcement.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapAnnounceTests
{
    private const string AnnouncedIpv4 = "10.77.0.5";
    private const string AnnouncedIpv6 = "fd77::5";

    [Theory]
    [InlineData(OperationMode.Interrupt)]
    [InlineData(OperationMode.Poll)]
    public void TheKernelLearnsBothAddressesFromTheDriversAnnouncement(OperationMode mode)
    {
        KernelPeerRequirement.EnsureAvailable();
        using var ns = NetworkNamespace.Create();
        using var board = RiscvVirtBoard.Start(
            new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.GuestAnnounce);
        ns.MoveTapIn(1500, net.MacAddress.Span);
        Sysctl(ns, $"net.ipv4.conf.{ns.TapName}.arp_accept=1");
        Sysctl(ns, $"net.ipv6.conf.{ns.TapName}.forwarding=1");
        Sysctl(ns, $"net.ipv6.conf.{ns.TapName}.accept_untracked_na=1");
        Assert.Empty(Neighbour(ns, AnnouncedIpv4));
        Assert.Empty(Neighbour(ns, AnnouncedIpv6));

        net.Control.SetAnnounceAddresses([IPAddress.Parse(AnnouncedIpv4), IPAddress.Parse(AnnouncedIpv6)]);
        board.Machine.Monitor.Execute("announce-self", w =>
        {
            w.WriteNumber("initial"u8, 50);
            w.WriteNumber("max"u8, 100);
            w.WriteNumber("rounds"u8, 1);
            w.WriteNumber("step"u8, 50);
        });

        // Interrupt mode learns of the request from the configuration interrupt; poll mode from the status it polls.
        CancellationToken ct = TestContext.Current.CancellationToken;
        var clock = Stopwatch.StartNew();
        while (net.Control.Announcements == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "no announcement within 10 s");
            net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(50), ct);
            while (net.Pairs[0].TryReceive(new byte[net.Pairs[0].MaxReceiveFrameLength], out _))
            {
            }
        }

        string mac = string.Join(':', net.MacAddress.ToArray().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
        foreach (string address in new[] { AnnouncedIpv4, AnnouncedIpv6 })
        {
            string entry = string.Empty;
            while (!entry.Contains($"lladdr {mac}", StringComparison.Ordinal))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the kernel never learnt {address}: '{entry}' {Snmp6(ns)}");
                Thread.Sleep(20);
                entry = Neighbour(ns, address);
            }
        }

        Assert.Equal(1, net.Control.Announcements);
    }

    private static string Neighbour(NetworkNamespace ns, string address) =>
        ns.IpInside($"neigh show {address} dev {ns.TapName}").Trim();

    private static string Snmp6(NetworkNamespace ns)
    {
        using var process = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", ns.Name, "cat", "/proc/net/snmp6"]) { RedirectStandardOutput = true })!;
        string text = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return string.Join("; ", text.Split('\n').Where(l => l.Contains("Icmp6In", StringComparison.Ordinal) || l.Contains("Ip6InDiscards", StringComparison.Ordinal) || l.Contains("Ip6InHdrErrors", StringComparison.Ordinal) || l.Contains("Ip6InReceives", StringComparison.Ordinal)).Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))));
    }

    private static void Sysctl(NetworkNamespace ns, string setting)
    {
        using var process = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", ns.Name, "sysctl", "-q", "-w", setting])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"sysctl -w {setting} failed: {error}");
    }
}
