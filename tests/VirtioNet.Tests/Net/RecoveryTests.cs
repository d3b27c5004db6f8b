using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.NetworkInformation;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Error recovery against a software device (<see cref="SoftwareNetTransport"/> and <see cref="SoftwareSplitDevice"/>,
/// not a real device): what no peer can be made to do on demand (refuse FEATURES_OK on the way back, lie in a used
/// ring at a chosen moment) and the bookkeeping a real device cannot show (every DMA allocation, every buffer). The
/// QEMU side is in the integration tests' RecoveryTests.
/// </summary>
public sealed class RecoveryTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private VirtioNetDevice Open(SoftwareNetTransport transport, bool autoRecover = true) =>
        VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, AutoRecover = autoRecover, LinkPollInterval = TimeSpan.FromMilliseconds(1) });

    private static byte[] Frame(int length, byte seed)
    {
        byte[] frame = new byte[length];
        for (int i = 0; i < length; i++)
        {
            frame[i] = (byte)(seed + (i * 7));
        }

        return frame;
    }

    // Puts one frame into the next receive buffer, as the device would (mergeable header, num_buffers 1).
    private static void Deliver(SoftwareSplitDevice rx, byte[] frame)
    {
        Assert.True(rx.TryPop(out DeviceChain? chain));
        byte[] header = new byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
        rx.Complete(chain, (uint)chain.WriteWritable([.. header, .. frame]));
    }

    private static SoftwareSplitDevice Attach(HeapDmaAllocator memory, VirtioNetDevice net, bool receive) =>
        new(memory, receive ? net.ReceiveQueue : net.TransmitQueue, eventIdx: true);

    [Fact]
    public void ADeviceNeedingResetIsRecoveredInPlaceWithEveryBufferBackStatisticsKeptAndNothingLeaked()
    {
        var transport = new SoftwareNetTransport(Modern);
        VirtioNetDevice net = Open(transport);
        var events = new List<DeviceRecoveredEventArgs>();
        net.Recovered += (_, e) => events.Add(e);
        var rx = Attach(_memory, net, receive: true);
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];

        // Traffic before: one frame each way completed, three transmits still in the device's hands.
        Assert.True(net.Pairs[0].TrySend(Frame(100, 1)));
        Attach(_memory, net, receive: false).Loopback();
        Deliver(rx, Frame(200, 2));
        Assert.True(net.Pairs[0].TryReceive(received, out _));
        for (byte i = 0; i < 3; i++)
        {
            Assert.True(net.Pairs[0].TrySend(Frame(100, i)));
        }

        var queuesBefore = new Dictionary<int, (int, ulong, ulong, ulong)>(transport.ActiveQueues);
        int allocationsBefore = _memory.TotalAllocations;
        int outstandingBefore = _memory.OutstandingAllocations;

        transport.RequestReset();
        Assert.False(net.CheckHealth());

        // Reset, the §3.1.1 sequence with the same features, the same rings at the same addresses, DRIVER_OK.
        Assert.Equal(1, net.Recoveries);
        DeviceRecoveredEventArgs recovered = Assert.Single(events);
        Assert.Contains("DEVICE_NEEDS_RESET", recovered.Cause, StringComparison.Ordinal);
        Assert.Equal(3, recovered.DroppedTransmits);
        Assert.Equal(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver | VirtioDeviceStatus.FeaturesOk | VirtioDeviceStatus.DriverOk, transport.Status);
        Assert.Equal(Modern, transport.DriverFeatures);
        Assert.Equal(queuesBefore, transport.ActiveQueues);
        Assert.Equal(allocationsBefore, _memory.TotalAllocations);
        Assert.Equal(outstandingBefore, _memory.OutstandingAllocations);
        Assert.True(net.CheckHealth());

        // Statistics survive; the three frames in flight are counted as drops.
        Assert.Equal(4, net.Pairs[0].TransmitStatistics.Packets);
        Assert.Equal(3, net.Pairs[0].TransmitStatistics.Drops);
        Assert.Equal(3, net.RecoveryDroppedTransmits);
        Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Packets);
        Assert.Equal(net.Pairs[0].TransmitQueue.Queue.Size, net.Pairs[0].TransmitSlotsFree);

        // The rings are new to the device: every receive buffer posted again, traffic flows from index 0.
        var rx2 = Attach(_memory, net, receive: true);
        Assert.Equal(net.Pairs[0].ReceiveQueue.BufferCount, rx2.PendingAvailable);
        byte[] after = Frame(300, 9);
        Deliver(rx2, after);
        Assert.True(net.Pairs[0].TryReceive(received, out int length));
        Assert.Equal(after, received.AsSpan(0, length).ToArray());
        Assert.True(net.Pairs[0].TrySend(Frame(100, 5)));
        Assert.Equal(1, Attach(_memory, net, receive: false).Loopback());

        net.Dispose();
        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public void ARingTheDeviceBrokeIsRecoveredAutomaticallyByTheNextReceive()
    {
        var transport = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = Open(transport);
        var rx = Attach(_memory, net, receive: true);
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];

        // A used id past the ring: the driver latches receiveq1 broken, then recovers instead of throwing.
        rx.PushUsed(9999, 64);
        Assert.False(net.Pairs[0].TryReceive(received, out _));
        Assert.Equal(1, net.Recoveries);
        Assert.False(net.ReceiveQueue.IsBroken);

        var rx2 = Attach(_memory, net, receive: true);
        byte[] frame = Frame(64, 3);
        Deliver(rx2, frame);
        Assert.True(net.Pairs[0].TryReceive(received, out int length));
        Assert.Equal(frame, received.AsSpan(0, length).ToArray());
    }

    [Fact]
    public void WithoutAutoRecoverTheFaultReachesTheCallerAndRecoverFixesIt()
    {
        var transport = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = Open(transport, autoRecover: false);
        var rx = Attach(_memory, net, receive: true);
        rx.PushUsed(9999, 64);
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, Assert.Throws<VirtioException>(() => net.Pairs[0].TryReceive(received, out _)).Reason);
        Assert.False(net.CheckHealth());
        Assert.Equal(0, net.Recoveries);

        net.Recover();
        Assert.Equal(1, net.Recoveries);
        Assert.True(net.CheckHealth());
        Deliver(Attach(_memory, net, receive: true), Frame(64, 4));
        Assert.True(net.Pairs[0].TryReceive(received, out _));
    }

    [Fact]
    public void ADeviceThatRefusesFeaturesOkOnTheWayBackIsLeftFailedWithAClearErrorAndLeaksNothing()
    {
        var transport = new SoftwareNetTransport(Modern);
        VirtioNetDevice net = Open(transport);
        transport.RequestReset();
        transport.RefuseFeatures = true;

        var error = Assert.Throws<VirtioException>(net.Recover);
        Assert.Equal(VirtioErrorReason.FeaturesRefused, error.Reason);
        Assert.NotEqual(0, (int)(transport.Status & VirtioDeviceStatus.Failed));
        Assert.Contains("FEATURES_OK", net.RecoveryFailure, StringComparison.Ordinal);
        Assert.Equal(0, net.Recoveries);

        // Every queue refuses work with the reason; automatic recovery does not retry a device that failed.
        Assert.Equal(VirtioErrorReason.DeviceNeedsReset, Assert.Throws<VirtioException>(() => net.Pairs[0].TrySend(Frame(64, 1))).Reason);
        Assert.Equal(VirtioErrorReason.DeviceNeedsReset, Assert.Throws<VirtioException>(() => net.Pairs[0].TryReceive(new byte[net.Pairs[0].MaxReceiveFrameLength], out _)).Reason);

        net.Dispose();
        Assert.Equal(VirtioDeviceStatus.Reset, transport.Status);
        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public void ARecoveryDuringABurstDropsAndCountsTheFramesInFlightWhileLentBuffersStayTheCallers()
    {
        var transport = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = Open(transport);
        VirtioNetTransmitQueue tx = net.Pairs[0].TransmitQueue;
        VirtioNetReceiveQueue rxq = net.Pairs[0].ReceiveQueue;
        int slots = tx.SlotsFree;

        // Transmit: 8 buffers lent, 5 of them handed to the device, 3 still being written by the caller.
        var lent = new TransmitPacket[8];
        Assert.Equal(8, tx.AllocateBurst(lent));
        foreach (TransmitPacket packet in lent)
        {
            Frame(60, 1).CopyTo(packet.Span);
        }

        Assert.Equal(5, tx.TransmitBurst(lent.AsSpan(0, 5).ToArray().Select(p => p.WithLength(60)).ToArray()));

        // Receive: two frames taken by a burst and not yet released.
        var rx = Attach(_memory, net, receive: true);
        Deliver(rx, Frame(70, 2));
        Deliver(rx, Frame(80, 3));
        var held = new ReceivedPacket[4];
        Assert.Equal(2, rxq.ReceiveBurst(held));
        byte[] heldBytes = held[1].Span.ToArray();

        transport.RequestReset();
        Assert.False(net.CheckHealth());

        Assert.Equal(5, net.RecoveryDroppedTransmits);
        Assert.Equal(5, tx.Statistics.Drops);
        Assert.Equal(slots - 3, tx.SlotsFree);
        Assert.Equal(heldBytes, held[1].Span.ToArray());

        // The caller's buffers come back as usual and the queues are whole.
        tx.FreeBurst(lent.AsSpan(5, 3));
        Assert.Equal(slots, tx.SlotsFree);
        rxq.ReleaseBurst(held.AsSpan(0, 2));
        Assert.Equal(rxq.BufferCount, Attach(_memory, net, receive: true).PendingAvailable);
    }

    [Fact]
    public async Task RecoveryTellsTheDeviceAgainEverythingTheControlQueueHadToldIt()
    {
        const ulong control = VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlRxExtra | VirtioNetFeatures.CtrlVlan |
            VirtioNetFeatures.CtrlMacAddr | VirtioNetFeatures.CtrlGuestOffloads | VirtioNetFeatures.GuestCsum;
        var transport = new SoftwareNetTransport(Modern | control);
        VirtioNetDevice net = Open(transport);
        var responder = new ControlQueueResponder(_memory, transport, net);
        ConcurrentQueue<(byte Class, byte Code, byte[] Payload)> commands = responder.Commands;

        try
        {
            byte[] mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
            byte[] listed = [0x02, 0, 0, 0, 0, 0x01];
            net.Control.SetPromiscuous(false);
            net.Control.SetMacFilter([new PhysicalAddress(listed)], []);
            net.Control.AddVlan(10);
            net.Control.AddVlan(20);
            net.Control.SetMacAddress(new PhysicalAddress(mac));
            net.Control.SetGuestOffloads(0);
            commands.Clear();

            transport.RequestReset();
            Assert.False(net.CheckHealth());
            Assert.Equal(1, net.Recoveries);

            (byte Class, byte Code, byte[] Payload)[] sent = [.. commands];
            Assert.Equal(((byte)VirtioNetControlClass.Mac, VirtioNetControlCommands.MacAddrSet), (sent[0].Class, sent[0].Code));
            Assert.Equal(mac, sent[0].Payload);

            // Every receive mode the device had been told, each off as before (promiscuous included).
            Assert.Equal([0, 1, 2, 3, 4, 5], sent[1..7].Select(c => (int)c.Code));
            Assert.All(sent[1..7], c => Assert.Equal(((byte)VirtioNetControlClass.Rx, (byte)0), (c.Class, c.Payload[0])));

            Assert.Equal(((byte)VirtioNetControlClass.Mac, VirtioNetControlCommands.MacTableSet), (sent[7].Class, sent[7].Code));
            Assert.Equal([1, 0, 0, 0, .. listed, 0, 0, 0, 0], sent[7].Payload);
            Assert.Equal(
                [((byte)VirtioNetControlClass.Vlan, (ushort)10), ((byte)VirtioNetControlClass.Vlan, (ushort)20)],
                sent[8..10].Select(c => (c.Class, BinaryPrimitives.ReadUInt16LittleEndian(c.Payload))));
            Assert.Equal((byte)VirtioNetControlClass.GuestOffloads, sent[10].Class);
            Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(sent[10].Payload));
            Assert.Equal(11, sent.Length);
            Assert.Equal(mac, net.MacAddress.ToArray());
        }
        finally
        {
            await responder.DisposeAsync();
            net.Dispose();
        }

        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public async Task AQueueGateKeepsASecondThreadOutAndRecoveryWaitsForTheWorkerToLeave()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        var gate = new QueueGate("receiveq1");
        Assert.True(gate.Enter());
        Assert.False(gate.Enter());

        // Another thread finds the worker inside, and recovery cannot close the gate under it. A thread of its own:
        // Task.Run may run on the very pool thread this test awaited on, which the gate rightly takes for the worker.
        Assert.IsType<InvalidOperationException>(OnOtherThread(() => Record.Exception(() => gate.Enter())));
        Assert.False(OnOtherThread(() => gate.TryClose(TimeSpan.FromMilliseconds(20))));

        gate.Exit(entered: true);
        Assert.True(await Task.Run(() => gate.TryClose(TimeSpan.FromSeconds(5)), ct));

        // While recovery holds it, a worker's call touches nothing and says why.
        var during = Assert.Throws<VirtioException>(() => gate.Enter());
        Assert.Equal(VirtioErrorReason.DeviceRecovering, during.Reason);
        gate.Open();
        Assert.True(gate.Enter());
        gate.Exit(entered: true);
    }

    private static T OnOtherThread<T>(Func<T> body)
    {
        T result = default!;
        var thread = new Thread(() => result = body());
        thread.Start();
        thread.Join();
        return result;
    }
}
