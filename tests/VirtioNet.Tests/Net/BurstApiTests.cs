using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>The zero-copy burst API against a software device: what the caller sees is the device's memory itself.</summary>
public sealed class BurstApiTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc | VirtioNetFeatures.Mtu;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private (VirtioNetDevice Net, SoftwareSplitDevice Rx, SoftwareSplitDevice Tx) Open(ushort mtu = 1500)
    {
        var transport = new SoftwareNetTransport(Modern);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), mtu);
        var net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        return (net, new SoftwareSplitDevice(_memory, net.ReceiveQueue, true), new SoftwareSplitDevice(_memory, net.TransmitQueue, true));
    }

    private static byte[] Wire(byte[] frame, ushort numBuffers)
    {
        byte[] data = new byte[12 + frame.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(VirtioNetHeader.NumBuffersOffset), numBuffers);
        frame.CopyTo(data, 12);
        return data;
    }

    private static byte[] Frame(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        return frame;
    }

    [Fact]
    public void ReceivedPacketsAreTheDevicesBuffersAndGoBackOnRelease()
    {
        var (net, rx, _) = Open();
        using (net)
        {
            VirtioNetReceiveQueue queue = net.Pairs[0].ReceiveQueue;
            var frames = new List<byte[]>();
            for (int i = 0; i < 5; i++)
            {
                frames.Add(Frame(60 + (i * 100), i));
                Assert.True(rx.TryPop(out DeviceChain? chain));
                rx.Complete(chain, (uint)chain.WriteWritable(Wire(frames[i], 1)));
            }

            var packets = new ReceivedPacket[8];
            Assert.Equal(5, queue.ReceiveBurst(packets));
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(frames[i], packets[i].Span.ToArray());
                Assert.Equal(1, packets[i].SegmentCount);

                // Zero copy: the span is the very memory the device wrote, at the device address it was given.
                Assert.Equal(frames[i], _memory.Map(packets[i].Data.DeviceAddress, packets[i].Length).ToArray());
            }

            int postedBefore = rx.PendingAvailable;
            queue.ReleaseBurst(packets.AsSpan(0, 5));
            Assert.Equal(postedBefore + 5, rx.PendingAvailable);
            Assert.Equal(5, net.Pairs[0].ReceiveStatistics.Packets);
        }
    }

    [Fact]
    public void AMultiBufferPacketArrivesAsAChainOfSegmentsAndIsNeverSplitAcrossCalls()
    {
        var (net, rx, _) = Open(mtu: 9000);
        using (net)
        {
            List<DeviceChain> chains = rx.PopAll();
            byte[] small = Frame(100, 1);
            rx.Complete(chains[0], (uint)chains[0].WriteWritable(Wire(small, 1)));

            byte[] frame = Frame(4000, 7);
            int offset = 0;
            for (int i = 1; i <= 3; i++)
            {
                byte[] part = i == 1
                    ? Wire(frame.AsSpan(0, (int)chains[i].WritableCapacity - 12).ToArray(), 3)
                    : frame.AsSpan(offset, Math.Min(frame.Length - offset, (int)chains[i].WritableCapacity)).ToArray();
                offset += i == 1 ? part.Length - 12 : part.Length;
                rx.Complete(chains[i], (uint)chains[i].WriteWritable(part));
            }

            // A span of three: the small packet, then the three segments do not fit the two entries left.
            var packets = new ReceivedPacket[3];
            Assert.Equal(1, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets));
            Assert.Equal(small, packets[0].Span.ToArray());
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, 1));

            Assert.Equal(3, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets));
            Assert.Equal(3, packets[0].SegmentCount);
            Assert.True(packets[1].IsContinuation && packets[2].IsContinuation);
            byte[] joined = [.. packets[0].Span, .. packets[1].Span, .. packets[2].Span];
            Assert.Equal(frame, joined);
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets);
            Assert.Equal(2, net.Pairs[0].ReceiveStatistics.Packets);
        }
    }

    [Fact]
    public void APacketWithMoreSegmentsThanTheWholeSpanIsDroppedAndCounted()
    {
        var (net, rx, _) = Open(mtu: 9000);
        using (net)
        {
            List<DeviceChain> chains = rx.PopAll();
            rx.Complete(chains[0], (uint)chains[0].WriteWritable(Wire(Frame(1000, 1), 2)));
            rx.Complete(chains[1], (uint)chains[1].WriteWritable(Frame(1000, 2)));
            Assert.Equal(0, net.Pairs[0].ReceiveQueue.ReceiveBurst(new ReceivedPacket[1]));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Drops);
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        }
    }

    [Fact]
    public void ATransmitBurstIsWrittenInPlaceAndKickedOnce()
    {
        var (net, _, tx) = Open();
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            var packets = new TransmitPacket[32];
            Assert.Equal(32, queue.AllocateBurst(packets));
            for (int i = 0; i < packets.Length; i++)
            {
                Frame(64 + i, i).CopyTo(packets[i].Span);
                packets[i] = packets[i].WithLength(64 + i);
            }

            long kicks = net.Pairs[0].TransmitStatistics.Notifications;
            Assert.Equal(32, queue.TransmitBurst(packets));
            Assert.Equal(kicks + 1, net.Pairs[0].TransmitStatistics.Notifications);
            for (int i = 0; i < packets.Length; i++)
            {
                Assert.True(tx.TryPop(out DeviceChain? chain));
                Assert.Equal([.. new byte[12], .. Frame(64 + i, i)], chain.ReadReadable());
                tx.Complete(chain, 0);
            }

            Assert.Equal(32, net.Pairs[0].TransmitStatistics.Packets);
        }
    }

    [Fact]
    public void BuffersThatAreNotTheQueuesOwnAreRefused()
    {
        var (net, _, _) = Open();
        using (net)
        {
            var packets = new TransmitPacket[1];
            Assert.Throws<ArgumentException>(() => net.Pairs[0].TransmitQueue.TransmitBurst([default(TransmitPacket).WithLength(64)]));
            Assert.Equal(1, net.Pairs[0].TransmitQueue.AllocateBurst(packets));
            Assert.Throws<ArgumentException>(() => net.Pairs[0].TransmitQueue.TransmitBurst([packets[0].WithLength(5)]));
            net.Pairs[0].TransmitQueue.FreeBurst(packets);
        }
    }

    [Fact]
    public void AFullRingSendsWhatFitsAndLeavesTheRestToTheCaller()
    {
        var (net, _, tx) = Open();
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            var packets = new TransmitPacket[300];
            int lent = queue.AllocateBurst(packets);
            Assert.Equal(256, lent);
            for (int i = 0; i < lent; i++)
            {
                packets[i] = packets[i].WithLength(60);
            }

            Assert.Equal(256, queue.TransmitBurst(packets.AsSpan(0, lent)));
            Assert.Equal(0, queue.AllocateBurst(packets));
            tx.Loopback();
            Assert.Equal(256, queue.AllocateBurst(packets));
            queue.FreeBurst(packets.AsSpan(0, 256));
        }
    }

    [Fact]
    public void TheSteadyStateBurstLoopAllocatesNothing()
    {
        var (net, rx, tx) = Open();
        using (net)
        {
            var sendBuffers = new TransmitPacket[32];
            var received = new ReceivedPacket[32];
            byte[] wire = Wire(Frame(60, 3), 1);
            long allocated = 0;
            for (int round = 0; round < 400; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                int n = net.Pairs[0].TransmitQueue.AllocateBurst(sendBuffers);
                for (int i = 0; i < n; i++)
                {
                    sendBuffers[i] = sendBuffers[i].WithLength(60);
                }

                net.Pairs[0].TransmitQueue.TransmitBurst(sendBuffers.AsSpan(0, n));
                int got = net.Pairs[0].ReceiveQueue.ReceiveBurst(received);
                net.Pairs[0].ReceiveQueue.ReleaseBurst(received.AsSpan(0, got));
                long spent = GC.GetAllocatedBytesForCurrentThread() - before;
                if (round >= 100)
                {
                    allocated += spent;
                }

                // The software device allocates as it plays its part; it runs outside the measured span.
                tx.Loopback();
                for (int i = 0; i < 32 && rx.TryPop(out DeviceChain? chain); i++)
                {
                    rx.Complete(chain, (uint)chain.WriteWritable(wire));
                }
            }

            Assert.Equal(0, allocated);
            Assert.True(net.Pairs[0].ReceiveStatistics.Packets > 5000);
        }
    }
}
