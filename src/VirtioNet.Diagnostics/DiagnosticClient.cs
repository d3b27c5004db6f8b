using System.Net;
using System.Net.NetworkInformation;

namespace VirtioNet.Diagnostics;

/// <summary>
/// The diagnostic client in one object: a link over a port, DHCP to configure it, ARP, and pingers. Asynchronous:
/// every wait is the port's (over a virtio-net device, the queue pair's <c>WaitForReceiveAsync</c>), so no thread is
/// held while nothing arrives; every wait takes a cancellation token and ends at a timeout. One operation at a time.
/// Malformed frames are dropped and counted in <see cref="Counters"/>, never thrown.
/// </summary>
/// <example>
/// <code>
/// var client = new DiagnosticClient(port);
/// var lease = await client.AcquireLeaseAsync(token);
/// var pinger = client.CreatePinger(lease.Router!);
/// await foreach (var reply in pinger.RunAsync(4, token)) Console.WriteLine(reply);
/// Console.WriteLine(pinger.Statistics);
/// </code>
/// </example>
public sealed class DiagnosticClient
{
    /// <summary>Creates a client over <paramref name="port"/>, unconfigured until <see cref="AcquireLeaseAsync"/> or <see cref="Configure"/>.</summary>
    public DiagnosticClient(IFramePort port, DiagnosticClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(port);
        var chosen = options ?? new DiagnosticClientOptions();
        Link = new DiagnosticLink(port, chosen.ArpCache, chosen.TransmitTimeout);
        Arp = new ArpResolver(Link, chosen.Arp);
        Dhcp = new DhcpClient(Link, chosen.Dhcp);
    }

    /// <summary>The link all parts share.</summary>
    public DiagnosticLink Link { get; }

    /// <summary>The ARP resolver.</summary>
    public ArpResolver Arp { get; }

    /// <summary>The DHCP client.</summary>
    public DhcpClient Dhcp { get; }

    /// <summary>The lease in use, or null before <see cref="AcquireLeaseAsync"/> (or after <see cref="Configure"/>).</summary>
    public DhcpLease? Lease { get; private set; }

    /// <summary>Our MAC address.</summary>
    public PhysicalAddress MacAddress => Link.MacAddress;

    /// <summary>Our IPv4 address, or null when unconfigured.</summary>
    public IPAddress? Address => Link.LocalAddress;

    /// <summary>What the link sent, received and dropped.</summary>
    public DiagnosticsCounters Counters => Link.Counters;

    /// <summary>Acquires a lease by DHCP and configures the link with it.</summary>
    /// <exception cref="DiagnosticsException">No offer, a NAK, or no ACK after the retries.</exception>
    public async ValueTask<DhcpLease> AcquireLeaseAsync(CancellationToken cancellationToken = default)
    {
        var lease = await Dhcp.AcquireAsync(cancellationToken).ConfigureAwait(false);
        Link.Configure(lease.Address, lease.SubnetMask, lease.Router);
        Lease = lease;
        return lease;
    }

    /// <summary>Configures the link statically, without DHCP.</summary>
    public void Configure(IPAddress address, IPAddress subnetMask, IPAddress? router)
    {
        Link.Configure(address, subnetMask, router);
        Lease = null;
    }

    /// <summary>Resolves <paramref name="address"/> by ARP.</summary>
    /// <exception cref="DiagnosticsException">Unconfigured, or no reply after the retries.</exception>
    public ValueTask<PhysicalAddress> ResolveAsync(IPAddress address, CancellationToken cancellationToken = default) =>
        Arp.ResolveAsync(address, cancellationToken);

    /// <summary>Creates a pinger for <paramref name="target"/> sharing this client's link and ARP cache.</summary>
    public Pinger CreatePinger(IPAddress target, PingOptions? options = null) => new(Link, Arp, target, options);
}
