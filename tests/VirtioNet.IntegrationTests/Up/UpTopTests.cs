using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet top</c> on a running service (QEMU's virtio-net on its user network, the kernel's ping in the service's
/// namespace): with stdout not a terminal it prints a plain line per queue and interval, whose counts are the device's.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed partial class UpTopTests
{
    [Fact]
    public void TopPrintsEachQueuesPacketsBytesDropsAndRatesAsPlainLinesWhenStdoutIsNotATerminal()
    {
        KernelPeerRequirement.EnsureAvailable();
        QemuRequirement.EnsureAvailable();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        using InProcessService service = InProcessService.Start(net, $"vt{suffix}", near.Name, dhcp: true);
        near.ExecInside("ping -c 5 -i 0.2 -W 5 10.0.2.2");

        VnetProcess.Result top = VnetProcess.Run("top", service.Name, "--count", "3", "--interval", "0.2");
        Assert.Equal(0, top.ExitCode);
        string[] lines = top.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Match last = Row().Match(lines[^1]);
        Assert.True(last.Success, lines[^1]);
        long rx = long.Parse(last.Groups["rx"].Value, CultureInfo.InvariantCulture);
        long tx = long.Parse(last.Groups["tx"].Value, CultureInfo.InvariantCulture);
        Assert.InRange(rx, 5, net.Pairs[0].ReceiveStatistics.Packets);
        Assert.InRange(tx, 5, net.Pairs[0].TransmitStatistics.Packets);

        VnetProcess.Result bad = VnetProcess.Run("top", service.Name, "--interval", "0");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--interval", bad.StandardError, StringComparison.Ordinal);
        VnetProcess.Result missing = VnetProcess.Run("top", $"nobody-runs-{suffix}");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no instance", missing.StandardError, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^queue 0: rx (?<rx>\d+) pkts [\d.]+ pps \d+ bytes \d+ B/s drops \d+ errors \d+ \| tx (?<tx>\d+) pkts [\d.]+ pps \d+ bytes \d+ B/s drops \d+ errors \d+ \| service drops \d+$")]
    private static partial Regex Row();
}
