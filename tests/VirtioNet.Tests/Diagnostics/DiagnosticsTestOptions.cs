using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

/// <summary>Short timeouts so that tests that wait for nothing finish quickly; the simulation answers at once.</summary>
internal static class DiagnosticsTestOptions
{
    public static DiagnosticClientOptions Session(int dhcpAttempts = 2, int arpAttempts = 2) => new()
    {
        Dhcp = new DhcpClientOptions
        {
            Attempts = dhcpAttempts,
            InitialTimeout = TimeSpan.FromMilliseconds(40),
            MaximumTimeout = TimeSpan.FromMilliseconds(80),
        },
        Arp = new ArpResolverOptions { Attempts = arpAttempts, Timeout = TimeSpan.FromMilliseconds(40) },
    };

    public static PingOptions Ping(int payloadSize = 56) => new()
    {
        Timeout = TimeSpan.FromMilliseconds(100),
        Interval = TimeSpan.Zero,
        PayloadSize = payloadSize,
    };

    public static async Task<DiagnosticClient> LeasedSession(SimulatedGateway gateway)
    {
        var session = new DiagnosticClient(gateway, Session());
        await session.AcquireLeaseAsync(TestContext.Current.CancellationToken);
        return session;
    }
}
