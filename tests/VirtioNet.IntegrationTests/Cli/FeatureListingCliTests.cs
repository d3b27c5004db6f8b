using System.Globalization;
using System.Numerics;
using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>
/// The feature listings of vnet offloads, probe and dump cover all 128 feature bits, against real QEMU 7.2 and 10.0:
/// neither offers the UDP tunnel GSO offloads (bits 65 to 68), so offloads lists them "off [not offered]" and refuses a
/// --set of them with one error line.
/// </summary>
public sealed class FeatureListingCliTests
{
    private static readonly string[] TunnelOffloads = ["tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation", "rx-udp_tnl-gro-hw", "rx-udp_tnl-csum-gro-hw"];

    private static string[] WithQemu(string? qemu, params string[] arguments) => qemu is null ? arguments : [.. arguments, "--qemu", qemu];

    private static void AssertTunnelOffloadsNotOffered(string? qemu, string transport)
    {
        VnetProcess.Result result = VnetProcess.Run(WithQemu(qemu, "offloads", "--transport", transport, "--json"));
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        JsonElement offloads = json.RootElement.GetProperty("offloads");
        int[] bits = [.. TunnelOffloads.Select(name =>
        {
            JsonElement o = offloads.GetProperty(name);
            Assert.False(o.GetProperty("offered").GetBoolean(), name);
            Assert.False(o.GetProperty("on").GetBoolean(), name);
            Assert.True(o.GetProperty("fixed").GetBoolean(), name);
            Assert.StartsWith("VIRTIO_NET_F_", Assert.Single(o.GetProperty("features").EnumerateArray()).GetString(), StringComparison.Ordinal);
            return Assert.Single(o.GetProperty("bits").EnumerateArray()).GetInt32();
        })];
        Assert.Equal([67, 68, 65, 66], bits);

        // The device's own: QEMU offers VLAN filtering on every transport, and it was negotiated.
        Assert.True(offloads.GetProperty("rx-vlan-filter").GetProperty("offered").GetBoolean());
        Assert.True(offloads.GetProperty("rx-vlan-filter").GetProperty("on").GetBoolean());
    }

    private static void AssertOneErrorLine(VnetProcess.Result result, params string[] fragments)
    {
        Assert.Equal(1, result.ExitCode);
        string[] errors = [.. result.StandardError.Split('\n').Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal))];
        Assert.Single(errors);
        Assert.All(fragments, f => Assert.Contains(f, errors[0], StringComparison.Ordinal));
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.StandardOutput);
    }

    // Every name of the list, and as many as the hexadecimal set has bits: no bit left out, none named twice.
    private static void AssertNamesMatchBits(JsonElement names, string hex)
    {
        string[] list = [.. names.EnumerateArray().Select(e => e.GetString()!)];
        Assert.Equal(list.Length, list.Distinct().Count());
        Assert.DoesNotContain(list, n => n.StartsWith("BIT_", StringComparison.Ordinal));
        Assert.StartsWith("0x", hex, StringComparison.Ordinal);
        int bits = hex[2..].Split('_').Sum(word => BitOperations.PopCount(ulong.Parse(word, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        Assert.Equal(bits, list.Length);
    }

    [Theory]
    [Trait("Peer", "Qemu")]
    [InlineData("mmio")]
    [InlineData("mmio-legacy")]
    [InlineData("pci")]
    public void OnQemu72TheUdpTunnelOffloadsAreListedAsNotOffered(string transport)
    {
        QemuRequirement.EnsureAvailable();
        AssertTunnelOffloadsNotOffered(null, transport);
    }

    [Theory]
    [Trait("Peer", "Qemu10")]
    [InlineData("mmio")]
    [InlineData("pci")]
    public void OnQemu10TheUdpTunnelOffloadsAreListedAsNotOffered(string transport)
    {
        string qemu = QemuRequirement.EnsureQemu10Available();
        AssertTunnelOffloadsNotOffered(qemu, transport);
    }

    [Fact]
    [Trait("Peer", "Qemu")]
    public void TheTextFormShowsEthtoolsLinesWithTheFeatureBitsAboveSixtyThree()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("offloads");
        Assert.True(result.ExitCode == 0, result.StandardError);
        string[] lines = result.StandardOutput.Split('\n');
        Assert.Equal("Features for net0:", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("tx-udp_tnl-segmentation:", StringComparison.Ordinal) && l.Contains("off [not offered]", StringComparison.Ordinal) && l.EndsWith("VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("rx-udp_tnl-csum-gro-hw:", StringComparison.Ordinal) && l.EndsWith("VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM (66)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("rx-vlan-filter:", StringComparison.Ordinal) && l.Contains("on [fixed]", StringComparison.Ordinal));
    }

    [Theory]
    [Trait("Peer", "Qemu")]
    [InlineData("tx-udp_tnl-segmentation=on", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)")]
    [InlineData("tx-udp_tnl-segmentation=off", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)")]
    [InlineData("tx-udp_tnl-csum-segmentation=on", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM (68)")]
    [InlineData("rx-udp_tnl-gro-hw=off", "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO (65)")]
    [InlineData("rx-udp_tnl-csum-gro-hw=on", "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM (66)")]
    public void ChangingATunnelOffloadQemuDoesNotOfferIsOneErrorLineAndExitCodeOne(string setting, string feature)
    {
        QemuRequirement.EnsureAvailable();
        AssertOneErrorLine(VnetProcess.Run("offloads", "-K", setting, "--json"), $"--set {setting}: not offered by the device", feature, "off [not offered]");
    }

    [Fact]
    [Trait("Peer", "Qemu10")]
    public void OnQemu10ARequestMixingAnOfferedAndATunnelOffloadIsRefusedWhole()
    {
        string qemu = QemuRequirement.EnsureQemu10Available();
        AssertOneErrorLine(
            VnetProcess.Run("offloads", "--set", "rx-vlan-filter=off", "--set", "rx-udp_tnl-gro-hw=on", "--transport", "pci", "--qemu", qemu),
            "--set rx-udp_tnl-gro-hw=on: not offered", "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO (65)");
    }

    [Theory]
    [Trait("Peer", "Qemu")]
    [InlineData("mmio")]
    [InlineData("pci")]
    public void ProbeAndDumpNameEveryOfferedAndNegotiatedBitOfAllFourFeatureWords(string transport)
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result probe = VnetProcess.Run("probe", "--transport", transport, "--json");
        Assert.True(probe.ExitCode == 0, probe.StandardError);
        using (JsonDocument json = JsonDocument.Parse(probe.StandardOutput))
        {
            JsonElement net = transport == "mmio"
                ? json.RootElement.GetProperty("devices").EnumerateArray().Single(d => d.GetProperty("type").GetString() == "net")
                : json.RootElement.GetProperty("pciFunctions").EnumerateArray().Single(f => f.TryGetProperty("type", out JsonElement t) && t.GetString() == "net");
            AssertNamesMatchBits(net.GetProperty("offeredFeatures"), net.GetProperty("offeredFeatureBits").GetString()!);
            Assert.Contains("VIRTIO_F_VERSION_1", net.GetProperty("offeredFeatures").EnumerateArray().Select(e => e.GetString()));
        }

        VnetProcess.Result dump = VnetProcess.Run("dump", "--transport", transport, "--json");
        Assert.True(dump.ExitCode == 0, dump.StandardError);
        using (JsonDocument json = JsonDocument.Parse(dump.StandardOutput))
        {
            JsonElement root = json.RootElement;
            AssertNamesMatchBits(root.GetProperty("offeredFeatures"), root.GetProperty("offeredFeatureBits").GetString()!);
            AssertNamesMatchBits(root.GetProperty("negotiatedFeatures"), root.GetProperty("negotiatedFeatureBits").GetString()!);
            string[] offered = [.. root.GetProperty("offeredFeatures").EnumerateArray().Select(e => e.GetString()!)];
            Assert.All(root.GetProperty("negotiatedFeatures").EnumerateArray(), f => Assert.Contains(f.GetString(), offered));
        }

        VnetProcess.Result text = VnetProcess.Run("dump", "--transport", transport);
        Assert.True(text.ExitCode == 0, text.StandardError);
        Assert.Contains(text.StandardOutput.Split('\n'), l => l.StartsWith("offered (0x", StringComparison.Ordinal));
        Assert.Contains(text.StandardOutput.Split('\n'), l => l.StartsWith("negotiated (0x", StringComparison.Ordinal));
        Assert.Contains("VIRTIO_F_VERSION_1", text.StandardOutput, StringComparison.Ordinal);
    }
}
