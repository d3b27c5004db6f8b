using System.Collections.Concurrent;
using System.Net.NetworkInformation;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// <see cref="VirtioNetDevice.Suspend"/> and <see cref="VirtioNetDevice.Resume"/> against a software device
/// (<see cref="SoftwareNetTransport"/> and <see cref="SoftwareSplitDevice"/>, not a real device), for what a real peer
/// cannot show: every status write, every DMA allocation, every buffer. QEMU and testpmd are in the integration tests'
/// SuspendResumeTests.
/// </summary>
public sealed class SuspendResumeTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private VirtioNetDevice Open(SoftwareNetTransport transport) =>
        VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, LinkPollInterval = TimeSpan.FromMilliseconds(1) });

    private static byte[] Frame(byte seed)
    {
        byte[] frame = new byte[100];
        frame.AsSpan().Fill(seed);
        return frame;
    }

    [Fact]
    public void SuspendResetsTheDeviceAndTakesEveryBufferBackAndResumeBringsItUpOnTheSameMemory()
    {
        var transport = new SoftwareNetTransport(Modern);
        VirtioNetDevice net = Open(transport);
        for (byte i = 0; i < 3; i++)
        {
            Assert.True(net.Pairs[0].TrySend(Frame(i)));
        }

        var queuesBefore = new Dictionary<int, (int, ulong, ulong, ulong)>(transport.ActiveQueues);
        int allocations = _memory.TotalAllocations;
        int outstanding = _memory.OutstandingAllocations;

        net.Suspend();

        Assert.True(net.IsSuspended);
        Assert.Equal(1, net.Suspends);
        Assert.Equal((VirtioDeviceStatus)0, transport.Status);
        Assert.Equal(3, net.Pairs[0].TransmitStatistics.Drops);
        Assert.Equal(net.Pairs[0].TransmitQueue.Queue.Size, net.Pairs[0].TransmitSlotsFree);
        Assert.Equal(0, net.Pairs[0].ReceiveQueue.Queue.Outstanding);
        Assert.Equal(VirtioErrorReason.DeviceRecovering, Assert.Throws<VirtioException>(() => net.Pairs[0].TrySend(Frame(7))).Reason);
        Assert.Throws<InvalidOperationException>(() => net.Control.SetPromiscuous(false));
        Assert.Throws<InvalidOperationException>(net.Suspend);
        Assert.Equal(0, net.Recoveries);

        net.Resume();

        Assert.False(net.IsSuspended);
        Assert.Throws<InvalidOperationException>(net.Resume);
        Assert.Equal(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver | VirtioDeviceStatus.FeaturesOk | VirtioDeviceStatus.DriverOk, transport.Status);
        Assert.Equal(Modern, transport.DriverFeatures);
        Assert.Equal(queuesBefore, transport.ActiveQueues);
        Assert.Equal(allocations, _memory.TotalAllocations);
        Assert.Equal(outstanding, _memory.OutstandingAllocations);
        var rx = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: true);
        Assert.Equal(net.Pairs[0].ReceiveQueue.BufferCount, rx.PendingAvailable);
        Assert.True(net.Pairs[0].TrySend(Frame(9)));
        Assert.Equal(1, new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true).Loopback());

        var kinds = new List<VirtioNetDeviceEventKind>();
        while (net.Events.TryRead(out VirtioNetDeviceEvent e))
        {
            kinds.Add(e.Kind);
        }

        Assert.Equal([VirtioNetDeviceEventKind.Suspended, VirtioNetDeviceEventKind.Resumed], kinds.Where(k => k is VirtioNetDeviceEventKind.Suspended or VirtioNetDeviceEventKind.Resumed));
        net.Dispose();
        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public async Task ResumeTellsTheDeviceAgainTheMacAddressAndReceiveModesItWasTold()
    {
        const ulong control = VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlMacAddr;
        var transport = new SoftwareNetTransport(Modern | control);
        VirtioNetDevice net = Open(transport);
        var responder = new ControlQueueResponder(_memory, transport, net);
        ConcurrentQueue<(byte Class, byte Code, byte[] Payload)> commands = responder.Commands;

        try
        {
            byte[] mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x66];
            net.Control.SetPromiscuous(false);
            net.Control.SetMacAddress(new PhysicalAddress(mac));
            commands.Clear();

            net.Suspend();
            Assert.Empty(commands);
            net.Resume();

            (byte Class, byte Code, byte[] Payload)[] sent = [.. commands];
            Assert.Equal(((byte)VirtioNetControlClass.Mac, VirtioNetControlCommands.MacAddrSet), (sent[0].Class, sent[0].Code));
            Assert.Equal(mac, sent[0].Payload);
            Assert.Contains(sent, c => c.Class == (byte)VirtioNetControlClass.Rx && c.Code == 0 && c.Payload[0] == 0);
            Assert.Equal(mac, net.MacAddress.ToArray());
            Assert.Equal(0, net.Recoveries);
        }
        finally
        {
            await responder.DisposeAsync();
            net.Dispose();
        }

        Assert.Equal(0, _memory.OutstandingAllocations);
    }
}
