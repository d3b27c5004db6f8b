using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The net driver with the optional ring features against a software device: VIRTIO_F_NOTIFICATION_DATA (no real peer
/// of this project offers it: QEMU 7.2 has no such property and DPDK 22.11's vhost does not offer it), per-queue reset
/// (VIRTIO_F_RING_RESET) and IN_ORDER batches on the transmit queue.
/// </summary>
public sealed class RingFeatureDeviceTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private (VirtioNetDevice Net, SoftwareSplitDevice Rx, SoftwareSplitDevice Tx) Open(SoftwareNetTransport transport)
    {
        var net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        return (net, new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: true), new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true));
    }

    private static byte[] Frame(int length, byte seed)
    {
        byte[] frame = new byte[length];
        for (int i = 0; i < length; i++)
        {
            frame[i] = (byte)(seed + (i * 7));
        }

        return frame;
    }

    // Delivers one frame into the next posted receive buffer (mergeable: a 12-byte header with num_buffers 1).
    private static void Deliver(SoftwareSplitDevice rx, byte[] frame)
    {
        Assert.True(rx.TryPop(out DeviceChain? chain));
        byte[] header = new byte[12];
        header[VirtioNetHeader.NumBuffersOffset] = 1;
        rx.Complete(chain, (uint)chain.WriteWritable([.. header, .. frame]));
    }

    private static byte[] Receive(VirtioNetDevice net)
    {
        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
        Assert.True(net.Pairs[0].TryReceive(buffer, out int length));
        return buffer.AsSpan(0, length).ToArray();
    }

    [Fact]
    public void WithNotificationDataEveryNotificationCarriesTheQueueAndItsAvailIndex()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioFeatures.NotificationData);
        var (net, rx, tx) = Open(transport);
        using (net)
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.NotificationData);

            // The receive queue was filled and kicked at bring-up: 256 entries published.
            Assert.True(transport.DataNotificationCounts[0] > 0);
            Assert.Equal(0u | (256u << 16), transport.LastNotificationData[0]);

            for (int i = 1; i <= 3; i++)
            {
                // The device pops each frame, which moves avail_event on, so each send is notified.
                Assert.True(net.Pairs[0].TrySend(Frame(60, (byte)i)));
                Assert.Equal(i, transport.DataNotificationCounts[1]);
                Assert.Equal(1u | ((uint)i << 16), transport.LastNotificationData[1]);
                Assert.Equal((ushort)i, tx.AvailIdx);
                Assert.True(tx.TryPop(out _));
            }

            Assert.Equal(0, transport.NotificationCounts[0] + transport.NotificationCounts[1]);
            Assert.Equal(256, rx.PendingAvailable);
        }
    }

    [Fact]
    public void WithoutNotificationDataNotificationsCarryOnlyTheQueueIndex()
    {
        var transport = new SoftwareNetTransport(Modern);
        var (net, _, _) = Open(transport);
        using (net)
        {
            Assert.True(net.Pairs[0].TrySend(Frame(60, 1)));
            Assert.True(transport.NotificationCounts[1] > 0);
            Assert.All(transport.DataNotificationCounts, n => Assert.Equal(0, n));
        }
    }

    [Fact]
    public void ResettingTheReceiveQueueTakesItsBuffersBackAndPostsThemAgainWhileTransmitGoesOn()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioFeatures.RingReset);
        var (net, rx, tx) = Open(transport);
        using (net)
        {
            Deliver(rx, Frame(100, 1));
            Assert.Equal(Frame(100, 1), Receive(net));
            Assert.True(net.Pairs[0].TrySend(Frame(70, 2)));
            var before = transport.ActiveQueues[0];

            // Some buffers were taken by the device but never returned when the reset comes.
            Assert.True(rx.TryPop(out _));
            int detached = net.ResetQueue(0);

            Assert.Equal(256, detached);
            Assert.Equal(new[] { 0 }, transport.QueueResets);
            Assert.Equal(before, transport.ActiveQueues[0]);

            // The device forgot the queue's indexes: a device starting afresh finds every buffer posted again from 0.
            var fresh = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: true);
            Assert.Equal(256, fresh.PendingAvailable);
            Assert.Equal(256, fresh.AvailIdx);
            Deliver(fresh, Frame(200, 3));
            Assert.Equal(Frame(200, 3), Receive(net));

            // transmitq1 was never touched: its device keeps its indexes and sees both frames in order.
            Assert.True(net.Pairs[0].TrySend(Frame(80, 4)));
            List<DeviceChain> sent = tx.PopAll();
            Assert.Equal(2, sent.Count);
            Assert.Equal(Frame(80, 4), sent[1].ReadReadable().AsSpan(12).ToArray());
            Assert.Equal(2, net.Pairs[0].ReceiveStatistics.Packets);
            Assert.DoesNotContain(1, transport.QueueResets);
        }
    }

    [Fact]
    public void ResettingTheTransmitQueueFreesTheSlotsOfFramesTheDeviceNeverReturned()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioFeatures.RingReset);
        var (net, _, tx) = Open(transport);
        using (net)
        {
            int free = net.Pairs[0].TransmitSlotsFree;
            for (int i = 0; i < 5; i++)
            {
                Assert.True(net.Pairs[0].TrySend(Frame(60, (byte)i)));
            }

            Assert.Equal(free - 5, net.Pairs[0].TransmitSlotsFree);
            tx.PopAll();

            Assert.Equal(5, net.ResetQueue(1));
            Assert.Equal(free, net.Pairs[0].TransmitSlotsFree);

            var fresh = new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true);
            Assert.True(net.Pairs[0].TrySend(Frame(61, 9)));
            Assert.True(fresh.TryPop(out DeviceChain? chain));
            Assert.Equal(Frame(61, 9), chain.ReadReadable().AsSpan(12).ToArray());
            Assert.Equal(1, fresh.AvailIdx);
        }
    }

    [Fact]
    public void ResettingAQueueWithoutRingResetIsRefused()
    {
        var transport = new SoftwareNetTransport(Modern);
        var (net, _, _) = Open(transport);
        using (net)
        {
            var e = Assert.Throws<VirtioException>(() => net.ResetQueue(0));
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
            Assert.Empty(transport.QueueResets);
        }
    }

    [Fact]
    public void OnlyReceiveAndTransmitQueuesCanBeResetAlone()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioFeatures.RingReset);
        var (net, _, _) = Open(transport);
        using (net)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => net.ResetQueue(2));
            Assert.Throws<ArgumentOutOfRangeException>(() => net.ResetQueue(-1));
            Assert.Empty(transport.QueueResets);
        }
    }

    [Fact]
    public void WithInOrderTheTransmitQueueTakesABatchBackFromOneUsedEntry()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioFeatures.InOrder);
        var (net, _, tx) = Open(transport);
        using (net)
        {
            Assert.True(((SplitVirtqueue)net.TransmitQueue).InOrder);
            Assert.True(((SplitVirtqueue)net.ReceiveQueue).InOrder);
            int free = net.Pairs[0].TransmitSlotsFree;
            for (int i = 0; i < 4; i++)
            {
                Assert.True(net.Pairs[0].TrySend(Frame(60, (byte)i)));
            }

            tx.CompleteInOrderBatch(tx.PopAll(), 0);
            Assert.Equal(4, tx.UsedIdx);
            Assert.Equal(4, net.Pairs[0].Reclaim());
            Assert.Equal(free, net.Pairs[0].TransmitSlotsFree);
        }
    }
}
