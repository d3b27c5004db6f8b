using System.Diagnostics;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>Link off and on through QEMU's monitor (<c>set_link</c>): the driver sees both changes and traffic resumes.</summary>
[Trait("Peer", "Qemu")]
public sealed class LinkTests
{
    [Theory]
    [InlineData(false, OperationMode.Interrupt)]
    [InlineData(true, OperationMode.Interrupt)]
    [InlineData(false, OperationMode.Poll)]
    [InlineData(true, OperationMode.Poll)]
    public void LinkOffAndOnRaiseLinkEventsAndTrafficResumes(bool modern, OperationMode mode)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using RiscvVirtBoard board = QemuNet.StartBoard(modern);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode });
        var events = new List<bool>();
        net.LinkStateChanged += (_, e) => events.Add(e.IsUp);
        Assert.True(net.IsLinkUp);

        board.SetLink(false);
        WaitFor(net, () => events.Count >= 1, ct);
        Assert.False(net.IsLinkUp);
        Assert.Equal([false], events);

        board.SetLink(true);
        WaitFor(net, () => events.Count >= 2, ct);
        Assert.True(net.IsLinkUp);
        Assert.Equal([false, true], events);
        if (mode == OperationMode.Interrupt)
        {
            Assert.Equal(2, net.ConfigurationInterrupts);
        }

        // The same changes as messages on the device's event channel, in order (interrupt mode adds the configuration
        // change notifications before each).
        var kinds = new List<VirtioNetDeviceEventKind>();
        while (net.Events.TryRead(out VirtioNetDeviceEvent e))
        {
            kinds.Add(e.Kind);
        }

        Assert.Equal([VirtioNetDeviceEventKind.LinkDown, VirtioNetDeviceEventKind.LinkUp], kinds.Where(k => k is VirtioNetDeviceEventKind.LinkDown or VirtioNetDeviceEventKind.LinkUp));
        if (mode == OperationMode.Interrupt)
        {
            Assert.Equal(2, kinds.Count(k => k == VirtioNetDeviceEventKind.ConfigurationChanged));
        }

        var (_, replies) = QemuNet.DhcpAndPing(net, 3);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
    }

    // The worker's loop: wait for frames (none come), which is where configuration interrupts and link polls are handled.
    private static void WaitFor(VirtioNetDevice net, Func<bool> condition, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "no link event within 10 s");
            net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(50), ct);
        }
    }
}
