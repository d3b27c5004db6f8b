using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// VIRTIO_NET_F_SPEED_DUPLEX values that change while the device runs (§5.1.4.2: the device may change them and
/// signals a configuration change), against the fault-injecting software device (<see cref="SoftwareSharedLineTransport"/>,
/// not a real device: QEMU fixes <c>speed=</c> and <c>duplex=</c> when the device is created, so no peer here can
/// change them): read again on the configuration interrupt in interrupt mode, and at the link poll in poll mode.
/// </summary>
public sealed class SpeedDuplexChangeTests : IDisposable
{
    private const ulong Features = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf;
    private const uint Unknown = uint.MaxValue;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    [Fact]
    public void InInterruptModeSpeedAndDuplexAreReadAgainWhenTheSoftwareDeviceSignalsAConfigurationChange()
    {
        using var transport = Transport(Features | VirtioNetFeatures.SpeedDuplex, 1000, 1);
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        Assert.Equal(1000u, net.Config.SpeedMbps);
        Assert.True(net.Config.FullDuplex);
        Drain(net);

        // Values written without a notification are not seen: the driver reads them when told (or at the link poll).
        Write(transport, 100, 0);
        net.ProcessEvents();
        Assert.Equal(1000u, net.Config.SpeedMbps);

        transport.Signal(InterruptCause.ConfigurationChange);
        net.ProcessEvents();
        Assert.Equal(100u, net.Config.SpeedMbps);
        Assert.False(net.Config.FullDuplex);
        Assert.Equal(1, net.ConfigurationInterrupts);
        Assert.Contains(VirtioNetDeviceEventKind.ConfigurationChanged, Drain(net));

        // 0xffffffff and a duplex value other than 0 and 1 are "unknown" (§5.1.4).
        Write(transport, Unknown, 0xff);
        transport.Signal(InterruptCause.ConfigurationChange);
        net.ProcessEvents();
        Assert.Null(net.Config.SpeedMbps);
        Assert.Null(net.Config.FullDuplex);
        Assert.Equal(2, net.ConfigurationInterrupts);
        Assert.True(net.IsLinkUp);
    }

    [Fact]
    public void InPollModeSpeedAndDuplexAreReadAgainAtTheNextLinkPoll()
    {
        using var transport = Transport(Features | VirtioNetFeatures.SpeedDuplex, 25000, 1);
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, LinkPollInterval = TimeSpan.FromMilliseconds(1) });
        Assert.Equal(25000u, net.Config.SpeedMbps);

        Write(transport, 10, 0);
        Assert.True(SpinUntil(() =>
        {
            net.ProcessEvents();
            return net.Config.SpeedMbps == 10;
        }), "poll mode never read the new speed");
        Assert.False(net.Config.FullDuplex);
    }

    [Fact]
    public void WithoutTheFeatureAConfigurationChangeLeavesSpeedAndDuplexUnknownAndUnread()
    {
        using var transport = Transport(Features, 1000, 1);
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetFeatures.SpeedDuplex);
        Assert.Null(net.Config.SpeedMbps);

        Write(transport, 100, 0);
        transport.Signal(InterruptCause.ConfigurationChange);
        net.ProcessEvents();
        Assert.Equal(1, net.ConfigurationInterrupts);
        Assert.Null(net.Config.SpeedMbps);
        Assert.Null(net.Config.FullDuplex);
    }

    private SoftwareSharedLineTransport Transport(ulong features, uint speed, byte duplex)
    {
        var transport = new SoftwareSharedLineTransport(new SoftwareNetTransport(features), _memory, 1);
        transport.Inner.Config[VirtioNetConfig.StatusOffset] = 1;
        Write(transport, speed, duplex);
        return transport;
    }

    private static void Write(SoftwareSharedLineTransport transport, uint speed, byte duplex)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(transport.Inner.Config.AsSpan(VirtioNetConfig.SpeedOffset), speed);
        transport.Inner.Config[VirtioNetConfig.DuplexOffset] = duplex;
    }

    private static List<VirtioNetDeviceEventKind> Drain(VirtioNetDevice net)
    {
        var kinds = new List<VirtioNetDeviceEventKind>();
        while (net.Events.TryRead(out VirtioNetDeviceEvent e))
        {
            kinds.Add(e.Kind);
        }

        return kinds;
    }

    // Bounded in count and time: the poll interval is 1 ms, so a few rounds suffice on a passing run.
    private static bool SpinUntil(Func<bool> condition)
    {
        for (int i = 0; i < 5000; i++)
        {
            if (condition())
            {
                return true;
            }

            Thread.Sleep(1);
        }

        return false;
    }
}
