using System.Text.Json;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Pci;

/// <summary><c>vnet</c> with <c>--transport pci</c> and <c>pci-legacy</c>, in its own process, against real QEMU.</summary>
[Trait("Peer", "Qemu")]
public sealed class PciCliTests
{
    [Theory]
    [InlineData("pci", "intx", "virtio-pci modern @ 00:01.0 (INTx)", true)]
    [InlineData("pci", "msix-per-queue", "virtio-pci modern @ 00:01.0 (MSI-X per queue)", true)]
    [InlineData("pci-legacy", "intx", "virtio-pci legacy @ 00:01.0 (INTx)", false)]
    [InlineData("pci-legacy", "msix", "virtio-pci legacy @ 00:01.0 (MSI-X shared)", false)]
    public void PingWorksOverEachPciTransport(string transport, string interrupts, string expectedTransport, bool version1)
    {
        QemuRequirement.EnsureAvailable();

        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "-c", "3", "-i", "0.05", "--transport", transport, "--pci-interrupts", interrupts, "--json");

        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal("10.0.2.15", json.RootElement.GetProperty("address").GetString());
        Assert.Equal(3, json.RootElement.GetProperty("received").GetInt32());
        Assert.Contains(expectedTransport, result.StandardError, StringComparison.Ordinal);
        string[] negotiated = [.. json.RootElement.GetProperty("negotiatedFeatures").EnumerateArray().Select(f => f.GetString()!)];
        Assert.Equal(version1, negotiated.Contains("VIRTIO_F_VERSION_1"));
    }

    [Fact]
    public void PingPrintsRepliesOverLegacyPciInPollMode()
    {
        QemuRequirement.EnsureAvailable();

        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "-c", "2", "-i", "0.05", "--transport", "pci-legacy", "--mode", "poll");

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Contains("2 packets transmitted, 2 received, 0% packet loss", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void ProbeJsonListsThePciFunctionWithBarsCapabilitiesAndMsix()
    {
        QemuRequirement.EnsureAvailable();

        VnetProcess.Result result = VnetProcess.Run("probe", "--transport", "pci", "--json");

        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        JsonElement[] functions = [.. json.RootElement.GetProperty("pciFunctions").EnumerateArray()];
        Assert.Equal(["00:00.0", "00:01.0"], functions.Select(f => f.GetProperty("address").GetString()));
        JsonElement net = functions[1];
        Assert.Equal("0x1af4", net.GetProperty("vendorId").GetString());
        Assert.Equal("0x1041", net.GetProperty("deviceId").GetString());
        Assert.Equal("net", net.GetProperty("type").GetString());
        Assert.Equal("52:54:00:12:34:56", net.GetProperty("mac").GetString());
        Assert.Equal(33, net.GetProperty("intxPlicLine").GetInt32());
        Assert.True(net.GetProperty("msixTableSize").GetInt32() >= 3);
        Assert.Equal([1, 4], net.GetProperty("bars").EnumerateArray().Select(b => b.GetProperty("index").GetInt32()));
        string[] cfgTypes = [.. net.GetProperty("capabilities").EnumerateArray()
            .Where(c => c.TryGetProperty("cfgType", out _)).Select(c => c.GetProperty("cfgType").GetString()!)];
        Assert.Equal(["common", "device", "isr", "notify", "pci-cfg"], cfgTypes.Order());
        Assert.Contains(net.GetProperty("capabilities").EnumerateArray(), c => c.GetProperty("id").GetString() == "MSI-X");
    }

    [Fact]
    public void AnUnknownTransportIsAUsageError()
    {
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--transport", "pcie");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("pcie", result.StandardError, StringComparison.Ordinal);
    }
}
