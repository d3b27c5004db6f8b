using System.Text.Json;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>
/// VIRTIO_NET_F_SPEED_DUPLEX against QEMU's virtio-net <c>speed=</c> and <c>duplex=</c> properties (QEMU offers the
/// feature only when one is given): the driver negotiates it and reads both fields, and <c>vnet probe</c> shows them,
/// on virtio-mmio and virtio-pci; without the properties nothing is offered and nothing is shown.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class SpeedDuplexTests
{
    [Theory]
    [InlineData("speed=2500,duplex=half", 2500u, false)]
    [InlineData("speed=100000,duplex=full", 100000u, true)]
    public void TheDriverReadsTheSpeedAndDuplexQemuWasGiven(string properties, uint speed, bool full)
    {
        using RiscvVirtBoard board = QemuNet.StartBoard(modern: true, properties);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Assert.True(net.NegotiatedFeatures.ContainsAny(VirtioNetFeatures.SpeedDuplex));
        Assert.Equal(speed, net.Config.SpeedMbps);
        Assert.Equal(full, net.Config.FullDuplex);
    }

    [Fact]
    public void WithoutThePropertiesQemuOffersNoSpeedAndTheDriverReportsNone()
    {
        using RiscvVirtBoard board = QemuNet.StartBoard(modern: true);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Assert.False(net.OfferedFeatures.ContainsAny(VirtioNetFeatures.SpeedDuplex));
        Assert.Null(net.Config.SpeedMbps);
        Assert.Null(net.Config.FullDuplex);
    }

    [Theory]
    [InlineData("mmio")]
    [InlineData("pci")]
    public void ProbeShowsTheSpeedAndDuplexOfTheNetDevice(string transport)
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("probe", "--transport", transport, "--device-opts", "speed=1000,duplex=full", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        string json = result.StandardOutput;
        Assert.Contains("\"speedMbps\": 1000", json, StringComparison.Ordinal);
        Assert.Contains("\"duplex\": \"full\"", json, StringComparison.Ordinal);
        using JsonDocument document = JsonDocument.Parse(json);
        Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
    }
}
