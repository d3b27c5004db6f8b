using System.Net.NetworkInformation;
using System.Text.Json;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// <see cref="VirtioNetDevice.Suspend"/> and <see cref="VirtioNetDevice.Resume"/> across a QEMU stop and cont (QMP),
/// as a guest suspended before its host pauses it: the suspend resets QEMU's virtio-net (QMP <c>query-rx-filter</c>
/// shows its filter back at the reset state), and the resume tells it again the MAC address, promiscuous mode, MAC
/// table and VLAN the driver had set; DHCP and ping work before and after.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class SuspendResumeTests
{
    [Theory]
    [InlineData(OperationMode.Interrupt)]
    [InlineData(OperationMode.Poll)]
    public void AcrossAQemuStopAndContTheResumedDeviceHasItsMacFiltersAndVlanAgainAndPings(OperationMode mode)
    {
        using RiscvVirtBoard board = QemuNet.StartBoard(modern: true);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });
        byte[] mac = [0x02, 0x00, 0x00, 0x77, 0x00, 0x51];
        net.Control.SetMacAddress(new PhysicalAddress(mac));
        net.Control.SetPromiscuous(false);
        net.Control.SetMacFilter([], [PhysicalAddress.Parse("01-00-5E-01-02-03")]);
        net.Control.AddVlan(100);
        AssertToldFilter(TransmitWatchdogTests.Filter(board));
        Assert.All(QemuNet.DhcpAndPing(net, 2).Replies, r => Assert.Equal(PingStatus.Success, r.Status));

        net.Suspend();

        // QEMU's virtio-net was reset: its filter is the reset one (promiscuous, no MAC table, no VLAN).
        JsonElement reset = TransmitWatchdogTests.Filter(board);
        Assert.True(reset.GetProperty("promiscuous").GetBoolean());
        Assert.Empty(reset.GetProperty("multicast-table").EnumerateArray());
        board.Machine.Monitor.Execute("stop");
        board.Machine.Monitor.Execute("cont");

        net.Resume();

        AssertToldFilter(TransmitWatchdogTests.Filter(board));
        Assert.Equal(mac, net.MacAddress.ToArray());
        Assert.All(QemuNet.DhcpAndPing(net, 3).Replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(1, net.Suspends);
        Assert.Equal(0, net.Recoveries);
    }

    private static void AssertToldFilter(JsonElement filter)
    {
        Assert.Equal("02:00:00:77:00:51", filter.GetProperty("main-mac").GetString());
        Assert.False(filter.GetProperty("promiscuous").GetBoolean());
        Assert.Contains(filter.GetProperty("multicast-table").EnumerateArray(), m => m.GetString() == "01:00:5e:01:02:03");
        Assert.Contains(filter.GetProperty("vlan-table").EnumerateArray(), v => v.GetInt32() == 100);
    }
}
