using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>The ethtool/ip-like vnet commands (channels, rss, offloads, stats, filter, vlan, mtu), in their own process, against QEMU.</summary>
[Trait("Peer", "Qemu")]
public sealed class MultiQueueCliTests
{
    private static void AssertUsageError(VnetProcess.Result result, string expectedFragment)
    {
        Assert.Equal(2, result.ExitCode);
        string[] lines = [.. result.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal))];
        Assert.Single(lines);
        Assert.Contains(expectedFragment, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);

        // Refused before QEMU was started.
        Assert.DoesNotContain("starting QEMU", result.StandardError, StringComparison.Ordinal);
    }

    private static void RequireRoot()
    {
        QemuRequirement.EnsureAvailable();
        if (Environment.IsPrivilegedProcess && File.Exists("/dev/net/tun"))
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail("--queues above 1 needs root and /dev/net/tun on CI.");
        }

        Assert.Skip("--queues above 1 needs root and /dev/net/tun.");
    }

    [Theory]
    [InlineData("A VLAN id is 0 to 4095; got 5000.", "vlan", "--add", "5000")]
    [InlineData("--promisc takes on or off; got 'maybe'.", "filter", "--promisc", "maybe")]
    [InlineData("--uc takes a MAC address", "filter", "--uc", "52:54:00:12:34")]
    [InlineData("--set: 'warp-drive' is not an offload", "offloads", "--set", "warp-drive=on")]
    [InlineData("--set takes NAME=on|off; got 'rx-checksumming'.", "offloads", "--set", "rx-checksumming")]
    [InlineData("--equal must be 1 to 2", "rss", "--queues", "2", "--equal", "3")]
    [InlineData("--key takes hex bytes", "rss", "--key", "6d:5a:zz")]
    [InlineData("--key has 41 bytes", "rss", "--key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728")]
    [InlineData("--hash-types: 'sctp4' is not a hash type", "rss", "--hash-types", "tcp4,sctp4")]
    [InlineData("--table-length must be a power of two", "rss", "--table-length", "100")]
    [InlineData("--queues must be 1 to 64; got 0.", "channels", "--queues", "0")]
    [InlineData("--combined must be 1 to 1", "channels", "--combined", "2")]
    public void ABadValueIsOneClearErrorLineAndExitCodeTwo(string expected, params string[] arguments)
    {
        AssertUsageError(VnetProcess.Run(arguments), expected);
    }

    [Fact]
    public void ChannelsShowsTheMaximumAndChangesTheActivePairs()
    {
        RequireRoot();
        VnetProcess.Result result = VnetProcess.Run("channels", "--queues", "4", "--combined", "2", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal(4, json.RootElement.GetProperty("maxCombined").GetInt32());
        Assert.Equal(4, json.RootElement.GetProperty("setUp").GetInt32());
        Assert.Equal(2, json.RootElement.GetProperty("combined").GetInt32());
    }

    [Fact]
    public void RssSetsAnEqualTableAndShowsItWithTheKey()
    {
        RequireRoot();
        VnetProcess.Result result = VnetProcess.Run("rss", "--queues", "4", "--equal", "2", "--table-length", "64", "--key", "01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10", "--hash-types", "udp4,tcp4", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        JsonElement root = json.RootElement;
        Assert.True(root.GetProperty("enabled").GetBoolean());
        int[] table = [.. root.GetProperty("indirectionTable").EnumerateArray().Select(e => e.GetInt32())];
        Assert.Equal(64, table.Length);
        Assert.Equal(Enumerable.Range(0, 64).Select(i => i % 2), table);
        Assert.Equal("01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10", root.GetProperty("key").GetString());
        Assert.Equal(["tcp4", "udp4"], root.GetProperty("hashTypes").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(40, root.GetProperty("maxKeySize").GetInt32());
    }

    [Fact]
    public void StatsListsEveryQueueOfEveryPair()
    {
        RequireRoot();
        VnetProcess.Result result = VnetProcess.Run("stats", "--queues", "2", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal(["receiveq1", "receiveq2", "transmitq1", "transmitq2"], json.RootElement.GetProperty("queues").EnumerateArray().Select(q => q.GetProperty("name").GetString()));
        Assert.Equal(1, json.RootElement.GetProperty("controlCommandsCompleted").GetInt64());

        // QEMU 7.2 does not offer VIRTIO_NET_F_DEVICE_STATS: the section is there, empty.
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("deviceStatistics").ValueKind);
        Assert.All(json.RootElement.GetProperty("queues").EnumerateArray(), q => Assert.Equal(0, q.GetProperty("coalescedSegments").GetInt64()));
        Assert.Equal(0, json.RootElement.GetProperty("recoveries").GetInt64());
    }

    [Fact]
    public void VlanFilterAndMtuReportWhatTheDeviceWasToldOrHas()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result vlan = VnetProcess.Run("vlan", "--add", "10", "--add", "20", "--del", "10", "--json");
        Assert.True(vlan.ExitCode == 0, vlan.StandardError);
        using (JsonDocument json = JsonDocument.Parse(vlan.StandardOutput))
        {
            Assert.Equal([20], json.RootElement.GetProperty("vlans").EnumerateArray().Select(e => e.GetInt32()));
        }

        VnetProcess.Result filter = VnetProcess.Run("filter", "--promisc", "off", "--allmulti", "on", "--mc", "01:00:5e:00:00:fb", "--json");
        Assert.True(filter.ExitCode == 0, filter.StandardError);
        using (JsonDocument json = JsonDocument.Parse(filter.StandardOutput))
        {
            Assert.False(json.RootElement.GetProperty("modes").GetProperty("promisc").GetBoolean());
            Assert.True(json.RootElement.GetProperty("modes").GetProperty("allmulti").GetBoolean());
            Assert.Equal(["01:00:5e:00:00:fb"], json.RootElement.GetProperty("multicast").EnumerateArray().Select(e => e.GetString()));
        }

        VnetProcess.Result mtu = VnetProcess.Run("mtu", "--device-opts", "host_mtu=9000", "--json");
        Assert.True(mtu.ExitCode == 0, mtu.StandardError);
        using (JsonDocument json = JsonDocument.Parse(mtu.StandardOutput))
        {
            Assert.Equal(9000, json.RootElement.GetProperty("mtu").GetInt32());
            Assert.Equal(9000, json.RootElement.GetProperty("deviceMtu").GetInt32());
        }

        VnetProcess.Result offloads = VnetProcess.Run("offloads", "--json");
        Assert.True(offloads.ExitCode == 0, offloads.StandardError);
        using (JsonDocument json = JsonDocument.Parse(offloads.StandardOutput))
        {
            // QEMU's user network has no vnet header: no checksum offload is offered, and VLAN filtering is.
            JsonElement all = json.RootElement.GetProperty("offloads");
            Assert.False(all.GetProperty("tx-checksumming").GetProperty("offered").GetBoolean());
            Assert.True(all.GetProperty("rx-vlan-filter").GetProperty("on").GetBoolean());
        }
    }
}
