using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using VirtioNet.IntegrationTests.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.MultiQueue;

/// <summary>
/// A multi-queue TAP in the root namespace with a unique name and its own /24, for QEMU's <c>-netdev tap,queues=N</c>:
/// the kernel's stack is the peer. The host end is .1; the guest is .2, reached through a permanent neighbour entry
/// (the driver answers no ARP). Always deleted on Dispose. Needs root, /dev/net/tun and iproute2: skipped without them
/// on a developer machine, failed on CI (CI=true), as <see cref="QemuRequirement"/> does.
/// </summary>
internal sealed class MultiQueueTap : IDisposable
{
    private static int s_counter;

    private MultiQueueTap(string name, IPAddress host, IPAddress guest)
    {
        Name = name;
        HostAddress = host;
        GuestAddress = guest;
    }

    /// <summary>The interface name, e.g. vnmq1234a.</summary>
    public string Name { get; }

    /// <summary>The kernel's address on the TAP.</summary>
    public IPAddress HostAddress { get; }

    /// <summary>The address the kernel sends the guest's frames to.</summary>
    public IPAddress GuestAddress { get; }

    /// <summary>The TAP's MAC address (where frames to the kernel go).</summary>
    public PhysicalAddress HostMac => PhysicalAddress.Parse(File.ReadAllText($"/sys/class/net/{Name}/address").Trim().Replace(':', '-'));

    /// <summary>
    /// The TAP queues a process has attached (the kernel's real transmit queue count, tx-N under sysfs): QEMU attaches
    /// one per active pair and detaches the rest (TUNSETQUEUE), so this is the device's active pairs as the kernel sees them.
    /// </summary>
    public int AttachedQueues => Directory.GetDirectories($"/sys/class/net/{Name}/queues", "tx-*").Length;

    /// <summary>The -netdev argument.</summary>
    public string Netdev(int queues) => $"tap,id=n0,ifname={Name},script=no,downscript=no,vnet_hdr=on,queues={queues}";

    /// <summary>Creates the TAP (multi_queue), gives it an address, keeps IPv6 off it (no solicitations on the wire), and brings it up.</summary>
    public static MultiQueueTap Create()
    {
        EnsureAvailable();
        int n = Interlocked.Increment(ref s_counter);
        string name = string.Create(CultureInfo.InvariantCulture, $"vnmq{Environment.ProcessId % 100000}{(char)('a' + (n % 26))}");

        // 10.(180..219).x.0/24: a subnet unlikely to be in use, different per process and per TAP, and not one any
        // interface of the machine has now (another test process's TAP may have hashed to the same one; a socket bound
        // there to a flow's port made a bind here fail with "Address already in use").
        int second = 180 + ((Environment.ProcessId / 251) % 40);
        int third = ((Environment.ProcessId * 7) + n) % 250;
        HashSet<string> inUse = NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address.ToString())
            .ToHashSet();
        for (int tries = 0; tries < 250 && inUse.Contains(string.Create(CultureInfo.InvariantCulture, $"10.{second}.{third}.1")); tries++)
        {
            third = (third + 1) % 250;
        }

        var host = IPAddress.Parse(string.Create(CultureInfo.InvariantCulture, $"10.{second}.{third}.1"));
        var guest = IPAddress.Parse(string.Create(CultureInfo.InvariantCulture, $"10.{second}.{third}.2"));
        Ip($"tuntap add dev {name} mode tap multi_queue");
        var tap = new MultiQueueTap(name, host, guest);
        try
        {
            File.WriteAllText($"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1");
            Ip($"addr add {host}/24 dev {name}");
            Ip($"link set {name} up");
            return tap;
        }
        catch
        {
            tap.Dispose();
            throw;
        }
    }

    /// <summary>Tells the kernel the guest's MAC, so datagrams to <see cref="GuestAddress"/> go out without ARP.</summary>
    public void AddGuestNeighbour(ReadOnlySpan<byte> mac) =>
        Ip($"neigh replace {GuestAddress} lladdr {string.Join(':', mac.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)))} dev {Name} nud permanent");

    public void Dispose() => Ip($"link del {Name}", throwOnFailure: false);

    private static void EnsureAvailable()
    {
        QemuRequirement.EnsureAvailable();
        string? missing = !Environment.IsPrivilegedProcess ? "the tests do not run as root (a TAP needs CAP_NET_ADMIN)"
            : !File.Exists("/dev/net/tun") ? "/dev/net/tun does not exist"
            : !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip") ? "iproute2 (ip) is not installed"
            : null;
        if (missing is null)
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"Multi-queue TAP tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"Multi-queue TAP tests skipped: {missing}.");
    }

    private static void Ip(string arguments, bool throwOnFailure = true)
    {
        using var process = Process.Start(new ProcessStartInfo("ip", arguments)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0 && throwOnFailure)
        {
            throw new InvalidOperationException($"ip {arguments} failed ({process.ExitCode}): {error.Trim()}");
        }
    }
}
