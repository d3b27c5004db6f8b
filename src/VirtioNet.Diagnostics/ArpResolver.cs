using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Resolves IPv4 addresses to MAC addresses with ARP requests (RFC 826), through the link's cache. While it waits,
/// the link answers requests for our own address: slirp asks for the guest's MAC before it forwards anything.
/// </summary>
public sealed class ArpResolver(DiagnosticLink link, ArpResolverOptions? options = null)
{
    /// <summary>The all-zero hardware address a request carries as its target (RFC 826: "don't care").</summary>
    private static readonly PhysicalAddress UnknownMac = new(new byte[6]);

    private readonly DiagnosticLink _link = link ?? throw new ArgumentNullException(nameof(link));

    /// <summary>How requests are retried.</summary>
    public ArpResolverOptions Options { get; } = options ?? new ArpResolverOptions();

    /// <summary>Returns the MAC address of <paramref name="address"/>, from the cache or by asking.</summary>
    /// <exception cref="DiagnosticsException">Unconfigured link, or no reply after every attempt.</exception>
    public async ValueTask<PhysicalAddress> ResolveAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        return await TryResolveAsync(address, cancellationToken).ConfigureAwait(false)
            ?? throw new DiagnosticsException(
                DiagnosticsErrorReason.ArpUnresolved,
                $"No ARP reply from {address} after {Options.Attempts} request(s), {Options.Timeout.TotalMilliseconds:0} ms each.");
    }

    /// <summary>Like <see cref="ResolveAsync"/>, but completes with null instead of throwing when nobody answers.</summary>
    /// <exception cref="DiagnosticsException">The link has no IPv4 address to ask from.</exception>
    public async ValueTask<PhysicalAddress?> TryResolveAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        var (local, _) = _link.RequireConfiguration();
        if (_link.ArpCache.TryGet(address, out var cached))
            return cached;

        for (var attempt = 0; attempt < Options.Attempts; attempt++)
        {
            var request = new ArpPacket(ArpOperation.Request, UnknownMac, address, _link.MacAddress, local);
            await _link.SendAsync(
                new EthernetPacket(_link.MacAddress, DiagnosticLink.BroadcastMac, EthernetType.Arp) { PayloadPacket = request },
                cancellationToken).ConfigureAwait(false);

            // A reply to us, or a request for us from the address we want (it resolving us first), both tell
            // its MAC; the link has cached it too, but the cache may be configured to forget at once.
            var found = await _link.WaitForAsync(
                Options.Timeout,
                frame => frame.PayloadPacket is ArpPacket arp
                    && arp.SenderProtocolAddress.Equals(address) && arp.TargetProtocolAddress.Equals(local)
                    ? arp.SenderHardwareAddress
                    : null,
                cancellationToken).ConfigureAwait(false);
            if (found is not null)
                return found;
        }

        return null;
    }
}
