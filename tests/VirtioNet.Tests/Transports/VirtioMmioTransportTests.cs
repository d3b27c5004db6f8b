using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports.Mmio;
using Xunit;

namespace VirtioNet.Tests.Transports;

public sealed class VirtioMmioTransportTests
{
    [Fact]
    public void AWindowWithoutTheMagicValueIsNotVirtio()
    {
        var device = new SoftwareMmioDevice { Magic = 0xdeadbeef };
        var error = Assert.Throws<VirtioException>(() => new VirtioMmioTransport(device, 0x10008000, null));
        Assert.Equal(VirtioErrorReason.NotVirtio, error.Reason);
        Assert.Contains("0xdeadbeef", error.Message, StringComparison.Ordinal);
        Assert.Contains("0x10008000", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    public void AnUnknownLayoutVersionIsRejected(uint version)
    {
        var device = new SoftwareMmioDevice { Version = version };
        var error = Assert.Throws<VirtioException>(() => new VirtioMmioTransport(device, 0x10001000, null));
        Assert.Equal(VirtioErrorReason.UnsupportedVersion, error.Reason);
    }

    [Fact]
    public void AnEmptySlotIsReportedAsNoDevice()
    {
        var transport = new VirtioMmioTransport(new SoftwareMmioDevice { DeviceId = 0 }, 0x10001000, null);
        var error = Assert.Throws<VirtioException>(() => VirtioDeviceInitializer.Negotiate(transport, VirtioDeviceTypes.Network, ulong.MaxValue));
        Assert.Equal(VirtioErrorReason.NoDevice, error.Reason);
    }

    [Fact]
    public void ANonNetworkDeviceIsRejectedWithItsTypeNamed()
    {
        var transport = new VirtioMmioTransport(new SoftwareMmioDevice { DeviceId = 4 }, 0x10007000, null);
        var error = Assert.Throws<VirtioException>(() => VirtioDeviceInitializer.Negotiate(transport, VirtioDeviceTypes.Network, ulong.MaxValue));
        Assert.Equal(VirtioErrorReason.WrongDeviceType, error.Reason);
        Assert.Contains("entropy", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ModernNegotiationAcceptsOnlyOfferedAndSupportedBitsAndSetsFeaturesOk()
    {
        var device = new SoftwareMmioDevice
        {
            OfferedFeatures = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Csum | VirtioFeatures.EventIdx,
        };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        ulong negotiated = VirtioDeviceInitializer.Negotiate(transport, 1, VirtioNetFeatures.Mac | VirtioFeatures.EventIdx | VirtioNetFeatures.MrgRxBuf);

        Assert.Equal(VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioFeatures.EventIdx, negotiated);
        Assert.Equal(negotiated, device.DriverFeatures);
        Assert.Equal(
            [0, (byte)VirtioDeviceStatus.Acknowledge, (byte)(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver), (byte)(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver | VirtioDeviceStatus.FeaturesOk)],
            device.StatusHistory);
    }

    [Fact]
    public void ADeviceThatRefusesFeaturesOkFailsNegotiationAndIsMarkedFailed()
    {
        var device = new SoftwareMmioDevice { OfferedFeatures = VirtioFeatures.Version1 | VirtioNetFeatures.Mac, RefuseFeatures = true };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        var error = Assert.Throws<VirtioException>(() => VirtioDeviceInitializer.Negotiate(transport, 1, VirtioNetFeatures.Mac));

        Assert.Equal(VirtioErrorReason.FeaturesRefused, error.Reason);
        Assert.NotEqual(0, device.Status & (byte)VirtioDeviceStatus.Failed);
    }

    [Fact]
    public void AModernDeviceWithoutVersion1IsRejected()
    {
        var device = new SoftwareMmioDevice { OfferedFeatures = VirtioNetFeatures.Mac };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);
        var error = Assert.Throws<VirtioException>(() => VirtioDeviceInitializer.Negotiate(transport, 1, VirtioNetFeatures.Mac));
        Assert.Equal(VirtioErrorReason.UnsupportedVersion, error.Reason);
    }

    [Fact]
    public void LegacyNegotiationUsesOneFeatureWordAndSkipsFeaturesOk()
    {
        var device = new SoftwareMmioDevice
        {
            Version = 1,
            OfferedFeatures = VirtioNetFeatures.Mac | VirtioFeatures.AnyLayout | VirtioFeatures.BadFeature,
        };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        ulong negotiated = VirtioDeviceInitializer.Negotiate(transport, 1, ulong.MaxValue);

        Assert.Equal(VirtioNetFeatures.Mac | VirtioFeatures.AnyLayout, negotiated);
        Assert.False(device.HighDriverFeatureWordWritten);
        Assert.DoesNotContain(device.StatusHistory, s => (s & (byte)VirtioDeviceStatus.FeaturesOk) != 0);
    }

    [Fact]
    public void RequiredFeaturesThatAreNotOfferedFailWithTheirMask()
    {
        var device = new SoftwareMmioDevice { OfferedFeatures = VirtioFeatures.Version1 };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);
        var error = Assert.Throws<VirtioException>(() => VirtioDeviceInitializer.Negotiate(transport, 1, VirtioNetFeatures.Mac, required: VirtioNetFeatures.Mac));
        Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, error.Reason);
    }

    [Fact]
    public void LegacyQueueActivationWritesPageSizeAlignAndPfn()
    {
        var device = new SoftwareMmioDevice { Version = 1 };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);
        const ulong desc = 0x8100_0000;
        const int size = 256;
        ulong avail = desc + (16 * size);
        ulong used = (avail + 6 + (2 * size) + 4095) & ~4095UL;

        transport.ActivateQueue(0, size, desc, avail, used);

        Assert.Equal(4096u, device.GuestPageSize);
        Assert.Equal((uint)size, device.Queues[0].Num);
        Assert.Equal(4096u, device.Queues[0].Align);
        Assert.Equal((uint)(desc / 4096), device.Queues[0].Pfn);
        Assert.True(transport.IsQueueActive(0));
    }

    [Fact]
    public void LegacyQueueActivationRejectsAreasTheDeviceWouldNotFind()
    {
        var transport = new VirtioMmioTransport(new SoftwareMmioDevice { Version = 1 }, 0x10008000, null);
        Assert.Throws<ArgumentException>(() => transport.ActivateQueue(0, 256, 0x8100_0000, 0x8100_1100, 0x8100_2000));
        Assert.Throws<ArgumentException>(() => transport.ActivateQueue(0, 256, 0x8100_0800, 0x8100_1800, 0x8100_2000));
    }

    [Fact]
    public void ModernQueueActivationWritesAllThreeAddressesThenReady()
    {
        var device = new SoftwareMmioDevice();
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        transport.ActivateQueue(1, 128, 0x1_8100_0000, 0x8100_0800, 0x8100_1000);

        var q = device.Queues[1];
        Assert.Equal(0x1_8100_0000UL, q.Desc);
        Assert.Equal(0x8100_0800UL, q.Driver);
        Assert.Equal(0x8100_1000UL, q.Device);
        Assert.True(q.Ready);
        Assert.Throws<VirtioException>(() => transport.ActivateQueue(1, 128, 0x8200_0000, 0x8200_0800, 0x8200_1000));
    }

    [Fact]
    public void AQueueSizeAboveTheSpecLimitIsNotBelieved()
    {
        var transport = new VirtioMmioTransport(new SoftwareMmioDevice { QueueNumMax = 65536 }, 0x10008000, null);
        var error = Assert.Throws<VirtioException>(() => transport.GetQueueSizeMax(0));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, error.Reason);
    }

    [Fact]
    public void InterruptAcknowledgeClearsExactlyTheCausesRead()
    {
        var device = new SoftwareMmioDevice { InterruptStatus = 3 };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);
        Assert.Equal(VirtioNet.Transports.InterruptCause.UsedBuffer | VirtioNet.Transports.InterruptCause.ConfigurationChange, transport.ReadAndAcknowledgeInterrupt());
        Assert.Equal(0u, device.InterruptStatus);
        Assert.Equal(VirtioNet.Transports.InterruptCause.None, transport.ReadAndAcknowledgeInterrupt());
    }

    [Fact]
    public void ConfigurationReadsOutsideTheWindowAreRefused()
    {
        var transport = new VirtioMmioTransport(new SoftwareMmioDevice(), 0x10008000, null);
        Assert.Throws<ArgumentOutOfRangeException>(() => transport.ReadConfig32(0xfe));
        Assert.Throws<ArgumentOutOfRangeException>(() => transport.ReadConfig8(-1));
    }
}
