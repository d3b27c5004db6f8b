using System.Collections.Concurrent;
using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The transmit watchdog against a software device (<see cref="SoftwareNetTransport"/> and
/// <see cref="SoftwareSplitDevice"/>, not a real device): a device that keeps transmit buffers, one that returns them
/// while the worker is idle, a link that is down, and the off switch. The real peers (testpmd stopped with SIGSTOP, QEMU
/// stopped through QMP) are in the integration tests' TransmitWatchdogTests.
/// </summary>
public sealed class TransmitWatchdogTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx;

    // Generous: the timer runs on a busy machine's thread pool.
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private VirtioNetDevice Open(SoftwareNetTransport transport, bool autoRecover, TimeSpan transmitTimeout)
    {
        // VIRTIO_NET_S_LINK_UP in the status field (offset 6, §5.1.4): the watchdog only watches a link that is up.
        transport.Config[6] = 1;
        return VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions
        {
            OperationMode = OperationMode.Poll,
            AutoRecover = autoRecover,
            TransmitTimeout = transmitTimeout,
            LinkPollInterval = TimeSpan.FromMilliseconds(1),
        });
    }

    private static byte[] Frame(byte seed)
    {
        byte[] frame = new byte[100];
        frame.AsSpan().Fill(seed);
        return frame;
    }

    private static bool WaitUntil(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Patience)
            {
                return false;
            }

            Thread.Sleep(5);
        }

        return true;
    }

    [Fact]
    public void ADeviceThatKeepsTransmitBuffersIsCountedAsATimeoutAndRecoveredAndFramesFlowAfter()
    {
        var transport = new SoftwareNetTransport(Modern);
        // A timeout long enough that a loaded machine does not stall the healthy part below for as long.
        using VirtioNetDevice net = Open(transport, autoRecover: true, TimeSpan.FromMilliseconds(250));
        var recovered = new ConcurrentQueue<DeviceRecoveredEventArgs>();
        net.Recovered += (_, e) => recovered.Enqueue(e);
        for (byte i = 0; i < 3; i++)
        {
            Assert.True(net.Pairs[0].TrySend(Frame(i)));
        }

        // The device takes the three frames and never returns them. The event is raised after the count moves.
        Assert.True(WaitUntil(() => net.Recoveries >= 1), "no recovery after a transmit timeout");
        Assert.True(WaitUntil(() => !recovered.IsEmpty), "no Recovered event");
        Assert.True(net.TransmitTimeouts >= 1);
        Assert.Equal(net.TransmitTimeouts, net.Pairs[0].TransmitStatistics.TransmitTimeouts);
        Assert.Contains("transmitq1 held 3 frames", recovered.First().Cause, StringComparison.Ordinal);
        Assert.Equal(3, recovered.First().DroppedTransmits);
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.TransmitTimeouts);

        var kinds = new List<VirtioNetDeviceEventKind>();
        while (net.Events.TryRead(out VirtioNetDeviceEvent e))
        {
            kinds.Add(e.Kind);
        }

        Assert.True(kinds.IndexOf(VirtioNetDeviceEventKind.TransmitTimeout) is >= 0 and var at && kinds.IndexOf(VirtioNetDeviceEventKind.Recovered) > at, string.Join(", ", kinds));

        // After the recovery the ring is new and empty: a frame sent is returned, and the watchdog stays quiet.
        long timeouts = net.TransmitTimeouts;
        long recoveries = net.Recoveries;
        var tx = new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true);
        Assert.True(net.Pairs[0].TrySend(Frame(9)));
        Assert.Equal(1, tx.Loopback());
        Assert.Equal(1, net.Pairs[0].Reclaim());
        Thread.Sleep(1000);
        Assert.Equal(timeouts, net.TransmitTimeouts);
        Assert.Equal(recoveries, net.Recoveries);
    }

    [Fact]
    public void WithoutAutoRecoverAStalledQueueIsCountedOncePerTimeoutAndLeftAlone()
    {
        var transport = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = Open(transport, autoRecover: false, TimeSpan.FromMilliseconds(50));
        Assert.True(net.Pairs[0].TrySend(Frame(1)));

        Assert.True(WaitUntil(() => net.TransmitTimeouts >= 2), "a stall that lasts two timeouts was not counted twice");
        Assert.Equal(0, net.Recoveries);
        Assert.Equal(1, net.Pairs[0].TransmitQueue.Queue.Outstanding);

        // The device returns the frame: the count stops growing.
        var tx = new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true);
        Assert.Equal(1, tx.Loopback());
        Assert.Equal(1, net.Pairs[0].Reclaim());
        long counted = net.TransmitTimeouts;
        Thread.Sleep(300);
        Assert.InRange(net.TransmitTimeouts, counted, counted + 1);
        long settled = net.TransmitTimeouts;
        Thread.Sleep(300);
        Assert.Equal(settled, net.TransmitTimeouts);
    }

    [Fact]
    public void FramesTheDeviceReturnedButAnIdleWorkerHasNotTakenBackAreNotATimeout()
    {
        var transport = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = Open(transport, autoRecover: true, TimeSpan.FromMilliseconds(50));
        for (byte i = 0; i < 4; i++)
        {
            Assert.True(net.Pairs[0].TrySend(Frame(i)));
        }

        // Used entries published; the worker never comes back to reclaim them.
        Assert.Equal(4, new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true).Loopback());
        Thread.Sleep(500);
        Assert.Equal(0, net.TransmitTimeouts);
        Assert.Equal(0, net.Recoveries);
        Assert.Equal(4, net.Pairs[0].TransmitQueue.Queue.Outstanding);
    }

    [Fact]
    public void ALinkThatIsDownAndTheOffSwitchKeepTheWatchdogQuiet()
    {
        var transport = new SoftwareNetTransport(Modern);
        using (VirtioNetDevice off = Open(transport, autoRecover: true, Timeout.InfiniteTimeSpan))
        {
            Assert.True(off.Pairs[0].TrySend(Frame(1)));
            Thread.Sleep(300);
            Assert.Equal(0, off.TransmitTimeouts);
        }

        var down = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = Open(down, autoRecover: true, TimeSpan.FromMilliseconds(50));
        down.Config[6] = 0;
        Assert.False(net.CheckLink());
        Assert.True(net.Pairs[0].TrySend(Frame(1)));
        Thread.Sleep(500);
        Assert.Equal(0, net.TransmitTimeouts);
        Assert.Equal(0, net.Recoveries);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(7_200_000)]
    public void ATimeoutOutsideTenMillisecondsToAnHourIsRefused(int milliseconds)
    {
        var options = new VirtioNetOptions { TransmitTimeout = TimeSpan.FromMilliseconds(milliseconds) };
        Assert.Equal("TransmitTimeout", Assert.Throws<ArgumentOutOfRangeException>(options.Validate).ParamName);
    }
}
