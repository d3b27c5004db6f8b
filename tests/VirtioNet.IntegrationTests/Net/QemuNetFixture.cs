using System.Net;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>Starts a riscv64 virt machine with the options a test asks for, and brings the net device up on it.</summary>
internal static class QemuNet
{
    public static readonly IPAddress Gateway = IPAddress.Parse("10.0.2.2");

    public static RiscvVirtBoard StartBoard(bool modern, string deviceProperties = "", int netSlot = 7)
    {
        QemuRequirement.EnsureAvailable();
        return RiscvVirtBoard.Start(
            new QemuMachineOptions { ModernMmio = modern, NetDeviceProperties = deviceProperties, DevicesBeforeNet = 7 - netSlot },
            TestContext.Current.CancellationToken);
    }

    /// <summary>DHCP from slirp, then <paramref name="count"/> echo requests to the gateway, back to back; returns the replies.</summary>
    /// <remarks>For synchronous tests: blocks on <see cref="DhcpAndPingAsync"/> (the client's waits are asynchronous).</remarks>
    public static (DhcpLease Lease, IReadOnlyList<PingReply> Replies) DhcpAndPing(VirtioNetDevice net, int count) =>
        DhcpAndPingAsync(net, count).GetAwaiter().GetResult();

    /// <summary>DHCP from slirp, then <paramref name="count"/> echo requests to the gateway, back to back, all on the pair's asynchronous waits.</summary>
    public static async Task<(DhcpLease Lease, IReadOnlyList<PingReply> Replies)> DhcpAndPingAsync(VirtioNetDevice net, int count)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        var session = new DiagnosticClient(new VirtioNetFramePort(net));
        DhcpLease lease = await session.AcquireLeaseAsync(ct);
        Pinger pinger = session.CreatePinger(Gateway, new PingOptions { Interval = TimeSpan.Zero, Timeout = TimeSpan.FromSeconds(3) });
        return (lease, await pinger.RunAsync(count, ct).ToListAsync(ct));
    }
}
