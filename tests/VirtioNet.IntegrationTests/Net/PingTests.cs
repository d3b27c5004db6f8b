using System.Net;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>DHCP and ping through the driver against QEMU's virtio-net on riscv64 virt, across transports, modes and device options.</summary>
[Trait("Peer", "Qemu")]
public sealed class PingTests
{
    public static TheoryData<bool, string, OperationMode, int, ReceiveMode> Configurations => new()
    {
        { false, "", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
        { false, "", OperationMode.Poll, 7, ReceiveMode.Mergeable },
        { true, "", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
        { true, "", OperationMode.Poll, 7, ReceiveMode.Mergeable },
        { false, "mrg_rxbuf=off", OperationMode.Interrupt, 7, ReceiveMode.Small },
        { true, "mrg_rxbuf=off", OperationMode.Poll, 7, ReceiveMode.Small },
        { true, "mrg_rxbuf=off,host_mtu=9000", OperationMode.Interrupt, 7, ReceiveMode.Big },
        { false, "event_idx=off", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
        { true, "event_idx=off", OperationMode.Poll, 7, ReceiveMode.Mergeable },
        { false, "indirect_desc=off", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
        { true, "indirect_desc=off,mrg_rxbuf=off,host_mtu=9000", OperationMode.Poll, 7, ReceiveMode.Big },
        { false, "", OperationMode.Interrupt, 3, ReceiveMode.Mergeable },
        { true, "", OperationMode.Poll, 0, ReceiveMode.Mergeable },
        { true, "packed=on", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
        { true, "packed=on", OperationMode.Poll, 7, ReceiveMode.Mergeable },
        { true, "packed=on,event_idx=off", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
        { true, "packed=on,mrg_rxbuf=off,host_mtu=9000", OperationMode.Interrupt, 7, ReceiveMode.Big },
        { true, "packed=on,indirect_desc=off,mrg_rxbuf=off", OperationMode.Poll, 7, ReceiveMode.Small },
        { false, "packed=on", OperationMode.Interrupt, 7, ReceiveMode.Mergeable },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public async Task DhcpAndPingOfTheGatewaySucceed(bool modern, string deviceProperties, OperationMode mode, int slot, ReceiveMode expectedMode)
    {
        using RiscvVirtBoard board = QemuNet.StartBoard(modern, deviceProperties, slot);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });

        Assert.Contains($"virtio-mmio v{(modern ? 2 : 1)} @ 0x{0x10001000 + (slot * 0x1000):x}", net.TransportDescription, StringComparison.Ordinal);
        Assert.Equal(expectedMode, net.ReceiveMode);
        Assert.Equal(deviceProperties.Contains("event_idx=off", StringComparison.Ordinal), (net.NegotiatedFeatures & VirtioFeatures.EventIdx) == 0);
        Assert.Equal(deviceProperties.Contains("indirect_desc=off", StringComparison.Ordinal), (net.NegotiatedFeatures & VirtioFeatures.IndirectDesc) == 0);
        Assert.Equal(modern, (net.NegotiatedFeatures & VirtioFeatures.Version1) != 0);

        // The packed ring only exists for modern devices; a legacy transport cannot even see bit 34.
        bool packed = modern && deviceProperties.Contains("packed=on", StringComparison.Ordinal);
        Assert.Equal(packed, (net.NegotiatedFeatures & VirtioFeatures.RingPacked) != 0);
        Assert.All(net.GetQueueStates(), q => Assert.Equal(packed ? "packed" : "split", q.Layout));
        Assert.True(net.MacFromDevice);
        Assert.True(net.IsLinkUp);

        var (lease, replies) = await QemuNet.DhcpAndPingAsync(net, 5);

        Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
        Assert.Equal(5, replies.Count);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.True(net.Pairs[0].TransmitStatistics.Packets >= 7);
        Assert.True(net.Pairs[0].ReceiveStatistics.Packets >= 7);
        if (mode == OperationMode.Poll)
        {
            // Poll mode never takes an interrupt; interrupt-mode wake-ups are proven in WireTests, where the test controls timing.
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Interrupts);
        }
    }

    [Theory]
    [InlineData(false, OperationMode.Interrupt)]
    [InlineData(true, OperationMode.Poll)]
    public async Task AThousandEchoesGoRoundTheRingsSeveralTimesWithContentsVerified(bool modern, OperationMode mode)
    {
        // 1000 echo round trips: each ring (256 entries) wraps several times; the pinger checks id, sequence and payload.
        using RiscvVirtBoard board = QemuNet.StartBoard(modern);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });

        var (_, replies) = await QemuNet.DhcpAndPingAsync(net, 1000);

        Assert.Equal(1000, replies.Count(r => r.Status == PingStatus.Success));
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
    }
}
