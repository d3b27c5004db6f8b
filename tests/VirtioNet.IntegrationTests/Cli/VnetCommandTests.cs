using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>The vnet tool end to end, in its own process, against real QEMU.</summary>
[Trait("Peer", "Qemu")]
public sealed class VnetCommandTests
{
    private static void AssertOneCleanErrorLine(VnetProcess.Result result, string expectedFragment)
    {
        Assert.NotEqual(0, result.ExitCode);
        string[] lines = result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal)).ToArray();
        Assert.Single(lines);
        Assert.Contains(expectedFragment, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void ProbeJsonListsTheEightVirtioMmioSlotsWithTheirIrqsAndTheNetDevice()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("probe", "--json");
        Assert.Equal(0, result.ExitCode);

        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal("riscv64-virt", json.RootElement.GetProperty("machine").GetString());
        JsonElement[] devices = [.. json.RootElement.GetProperty("devices").EnumerateArray()];
        Assert.Equal(8, devices.Length);
        for (int k = 0; k < 8; k++)
        {
            Assert.Equal($"0x{0x10001000 + (k * 0x1000):x}", devices[k].GetProperty("base").GetString());
            Assert.Equal(k + 1, devices[k].GetProperty("irq").GetInt32());
            Assert.Equal("virtio-mmio", devices[k].GetProperty("transport").GetString());
            Assert.Equal(2u, devices[k].GetProperty("version").GetUInt32());
        }

        Assert.All(devices[..7], d => Assert.Equal(0, d.GetProperty("deviceId").GetInt32()));
        JsonElement net = devices[7];
        Assert.Equal("net", net.GetProperty("type").GetString());
        Assert.Equal(1, net.GetProperty("deviceId").GetInt32());
        Assert.Equal("52:54:00:12:34:56", net.GetProperty("mac").GetString());
        Assert.True(net.GetProperty("linkUp").GetBoolean());
        string[] offered = [.. net.GetProperty("offeredFeatures").EnumerateArray().Select(f => f.GetString()!)];
        Assert.Contains("VIRTIO_NET_F_MAC", offered);
        Assert.Contains("VIRTIO_F_VERSION_1", offered);
        Assert.Contains("VIRTIO_NET_F_MRG_RXBUF", offered);
    }

    [Fact]
    public void PingJsonReportsRepliesAndTheNegotiatedFeatures()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--count", "3", "--interval", "0.05", "--transport", "mmio-legacy", "--json");
        Assert.Equal(0, result.ExitCode);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal("10.0.2.2", json.RootElement.GetProperty("target").GetString());
        Assert.Equal("10.0.2.15", json.RootElement.GetProperty("address").GetString());
        Assert.Equal(3, json.RootElement.GetProperty("transmitted").GetInt32());
        Assert.Equal(3, json.RootElement.GetProperty("received").GetInt32());
        Assert.Equal(3, json.RootElement.GetProperty("rttMs").GetArrayLength());
        string[] negotiated = [.. json.RootElement.GetProperty("negotiatedFeatures").EnumerateArray().Select(f => f.GetString()!)];
        Assert.Contains("VIRTIO_NET_F_MRG_RXBUF", negotiated);
        Assert.DoesNotContain("VIRTIO_F_VERSION_1", negotiated);
    }

    [Fact]
    public void PingPrintsRepliesTheWayPingDoes()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "-c", "2", "-i", "0.05", "--mode", "poll");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("64 bytes from 10.0.2.2: icmp_seq=1", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("2 packets transmitted, 2 received, 0% packet loss", result.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("DHCP: 10.0.2.15", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void DumpJsonShowsRegistersQueuesAndStatisticsAfterTraffic()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("dump", "--json", "--frames", "5", "--transport", "mmio-legacy");
        Assert.Equal(0, result.ExitCode);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        JsonElement root = json.RootElement;
        Assert.Contains(root.GetProperty("registers").EnumerateArray(), r => r.GetProperty("name").GetString() == "QueuePFN");
        JsonElement[] queues = [.. root.GetProperty("queues").EnumerateArray()];
        Assert.Equal(2, queues.Length);
        Assert.Equal(256, queues[0].GetProperty("outstanding").GetInt32());
        Assert.True(queues[1].GetProperty("availIdx").GetInt32() >= 5);
        Assert.True(root.GetProperty("statistics")[1].GetProperty("packets").GetInt64() >= 5);
        Assert.Equal(0, root.GetProperty("recoveries").GetInt64());
    }

    [Fact]
    public void CtrlCStopsPingAndLeavesNoQemuAndNoSharedMemoryBehind()
    {
        QemuRequirement.EnsureAvailable();
        int qemuPid = 0;
        string? shmFile = null;
        VnetProcess.Result result = VnetProcess.Run(
            (process, stderr) =>
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                while (!stderr().Contains("icmp", StringComparison.Ordinal) && !stderr().Contains("DHCP:", StringComparison.Ordinal))
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "ping never got going: " + stderr());
                    Thread.Sleep(50);
                }

                var match = System.Text.RegularExpressions.Regex.Match(stderr(), @"QEMU running \(pid (\d+)\)");
                Assert.True(match.Success, stderr());
                qemuPid = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                string qemuCommand = File.ReadAllText($"/proc/{qemuPid}/cmdline").Replace('\0', ' ');
                shmFile = System.Text.RegularExpressions.Regex.Match(qemuCommand, @"mem-path=([^,\s]+)").Groups[1].Value;
                Assert.StartsWith("/dev/shm/vnet-", shmFile, StringComparison.Ordinal);
                using var kill = System.Diagnostics.Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                kill.WaitForExit();
            },
            "ping", "10.0.2.2", "--count", "1000");

        Assert.Equal(130, result.ExitCode);
        Assert.Contains("vnet: error: interrupted", result.StandardError, StringComparison.Ordinal);
        string cmdline = $"/proc/{qemuPid}/cmdline";
        var wait = System.Diagnostics.Stopwatch.StartNew();
        while (File.Exists(cmdline) && wait.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(50);
        }

        Assert.False(File.Exists(cmdline), "QEMU outlived vnet");
        Assert.False(File.Exists(shmFile), $"{shmFile} was left behind");
    }

    [Fact]
    public void AMissingQemuBinaryIsOneClearErrorLine()
    {
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--qemu", "/nonexistent/qemu-system-riscv64");
        AssertOneCleanErrorLine(result, "QEMU not found");
        Assert.Equal(1, result.ExitCode);
    }

    [Theory]
    [InlineData("probe --frobnicate", "frobnicate")]
    [InlineData("ping 10.0.2.2 --transport pcie", "pcie")]
    [InlineData("ping 10.0.2.2 --mode sometimes", "sometimes")]
    [InlineData("ping not-an-address", "not an IPv4 address")]
    [InlineData("ping 10.0.2.2 --count 0", "--count")]
    [InlineData("probe --slot 9", "--slot")]
    [InlineData("probe --base zz", "--base")]
    [InlineData("probe --device-opts a\\ b", "device")]
    public void AnUnknownOptionOrBadValueIsOneClearErrorLineAndExitCodeTwo(string arguments, string expectedFragment)
    {
        VnetProcess.Result result = VnetProcess.Run(arguments.Replace("\\ ", "\u0001", StringComparison.Ordinal).Split(' ').Select(a => a.Replace('\u0001', ' ')).ToArray());
        AssertOneCleanErrorLine(result, expectedFragment);
        Assert.Equal(2, result.ExitCode);
    }

    [Fact]
    public void DrivingAnEmptySlotSaysSo()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--base", "0x10001000");
        AssertOneCleanErrorLine(result, "empty");
        Assert.Equal(1, result.ExitCode);
    }

    [Fact]
    public void DrivingADeviceThatIsNotANetDeviceSaysWhatItIs()
    {
        QemuRequirement.EnsureAvailable();

        // With the net device in slot 6, an entropy device (virtio-rng) sits in slot 7 at 0x10008000.
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--slot", "6", "--base", "0x10008000");
        AssertOneCleanErrorLine(result, "found 4 (entropy)");
        Assert.Equal(1, result.ExitCode);
    }

    [Fact]
    public void AnAddressWithNoSlotIsRefused()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--base", "0x20000000");
        AssertOneCleanErrorLine(result, "no virtio-mmio slot at 0x20000000");
    }
}
