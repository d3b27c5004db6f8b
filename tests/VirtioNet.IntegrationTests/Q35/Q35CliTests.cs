using System.Text.Json;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Q35;

/// <summary><c>vnet --machine x86_64-q35</c>, in its own process, against real QEMU.</summary>
[Trait("Peer", "Qemu")]
public sealed class Q35CliTests
{
    [Theory]
    [InlineData("pci", "intx", "virtio-pci modern @ 00:01.0 (INTx)", true)]
    [InlineData("pci", "msix-per-queue", "virtio-pci modern @ 00:01.0 (MSI-X per queue)", true)]
    [InlineData("pci-legacy", "intx", "virtio-pci legacy @ 00:01.0 (INTx)", false)]
    [InlineData("pci-legacy", "msix", "virtio-pci legacy @ 00:01.0 (MSI-X shared)", false)]
    public void PingWorksOverEachPciTransportOnQ35(string transport, string interrupts, string expectedTransport, bool version1)
    {
        QemuRequirement.EnsureAvailable(QemuMachineKind.X86Q35);

        VnetProcess.Result result = VnetProcess.Run(
            "ping", "10.0.2.2", "-c", "3", "-i", "0.05", "--machine", "x86_64-q35", "--transport", transport, "--pci-interrupts", interrupts, "--json");

        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal("10.0.2.15", json.RootElement.GetProperty("address").GetString());
        Assert.Equal(3, json.RootElement.GetProperty("received").GetInt32());
        Assert.Contains("starting QEMU x86_64 q35", result.StandardError, StringComparison.Ordinal);
        Assert.Contains(expectedTransport, result.StandardError, StringComparison.Ordinal);
        if (interrupts == "intx")
        {
            Assert.Contains("IOAPIC line 21", result.StandardError, StringComparison.Ordinal);
        }

        string[] negotiated = [.. json.RootElement.GetProperty("negotiatedFeatures").EnumerateArray().Select(f => f.GetString()!)];
        Assert.Equal(version1, negotiated.Contains("VIRTIO_F_VERSION_1"));
    }

    [Theory]
    [InlineData("pci")]
    [InlineData("pci-legacy")]
    public void PingPrintsRepliesOnQ35InPollMode(string transport)
    {
        QemuRequirement.EnsureAvailable(QemuMachineKind.X86Q35);

        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "-c", "2", "-i", "0.05", "--machine", "x86_64-q35", "--transport", transport, "--mode", "poll");

        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Contains("2 packets transmitted, 2 received, 0% packet loss", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public void ProbeJsonListsTheQ35ChipsetAndTheNetFunctionWithItsIoapicInput()
    {
        QemuRequirement.EnsureAvailable(QemuMachineKind.X86Q35);

        VnetProcess.Result result = VnetProcess.Run("probe", "--machine", "x86_64-q35", "--transport", "pci-legacy", "--json");

        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal("x86_64-q35", json.RootElement.GetProperty("machine").GetString());
        Assert.Empty(json.RootElement.GetProperty("devices").EnumerateArray());
        JsonElement[] functions = [.. json.RootElement.GetProperty("pciFunctions").EnumerateArray()];
        Assert.Equal(["00:00.0", "00:01.0", "00:1f.0", "00:1f.2", "00:1f.3"], functions.Select(f => f.GetProperty("address").GetString()));
        JsonElement net = functions[1];
        Assert.Equal("0x1000", net.GetProperty("deviceId").GetString());
        Assert.Equal("net", net.GetProperty("type").GetString());
        Assert.Equal(21, net.GetProperty("intxGsi").GetInt32());
        JsonElement io = net.GetProperty("bars").EnumerateArray().Single(b => b.GetProperty("index").GetInt32() == 0);
        Assert.Equal("io", io.GetProperty("space").GetString());
        Assert.StartsWith("0xc", io.GetProperty("cpuAddress").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("mmio")]
    [InlineData("mmio-legacy")]
    public void AnMmioTransportOnQ35IsOneClearUsageError(string transport)
    {
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--machine", "x86_64-q35", "--transport", transport);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("x86_64-q35 has no virtio-mmio slots: use --transport pci or pci-legacy", result.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("starting QEMU", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownMachineIsAUsageError()
    {
        VnetProcess.Result result = VnetProcess.Run("ping", "10.0.2.2", "--machine", "arm-virt");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("arm-virt", result.StandardError, StringComparison.Ordinal);
    }
}
