using System.Net;

namespace VirtioNet.Diagnostics;

/// <summary>What a DHCPACK granted (RFC 2131 §3.1 step 5; options from RFC 2132).</summary>
/// <param name="Address">Our address (yiaddr).</param>
/// <param name="SubnetMask">Option 1, subnet mask; the classful mask of <paramref name="Address"/> when the server sent none.</param>
/// <param name="Router">The first address of option 3, router, or null when there is none.</param>
/// <param name="DnsServers">Option 6, domain name servers, in the server's order.</param>
/// <param name="ServerIdentifier">Option 54, server identifier (the reply's IP source when absent).</param>
/// <param name="LeaseTime">Option 51, IP address lease time, or null when the server sent none.</param>
public sealed record DhcpLease(
    IPAddress Address,
    IPAddress SubnetMask,
    IPAddress? Router,
    IReadOnlyList<IPAddress> DnsServers,
    IPAddress ServerIdentifier,
    TimeSpan? LeaseTime)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"address {Address}/{SubnetMask}, router {Router?.ToString() ?? "none"}, " +
        $"DNS [{string.Join(", ", DnsServers)}], server {ServerIdentifier}, " +
        $"lease {(LeaseTime is { } lease ? $"{lease.TotalSeconds:0} s" : "unspecified")}";
}
