using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The batched receive burst (one used.idx read per burst, headers prefetched, refill by index bump on fixed slots)
/// against a software device, named so: many laps of the ring, and a device that lies in the middle of a batch, with
/// recovery getting every buffer back. Ref: virtio v1.2 §2.7.9, §5.1.6.4.
/// </summary>
public sealed class BatchedReceiveTests : IDisposable
{
    private const ulong Features = VirtioFeatures.Version1 | VirtioFeatures.InOrder | VirtioNetFeatures.Mac | VirtioNetFeatures.MrgRxBuf;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private VirtioNetDevice Open(ulong features = Features) =>
        VirtioNetDevice.Open(new SoftwareNetTransport(features), _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, AutoRecover = false });

    private static byte[] Frame(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        return frame;
    }

    private static void Deliver(SoftwareSplitDevice rx, byte[] frame)
    {
        Assert.True(rx.TryPop(out DeviceChain? chain));
        byte[] header = new byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
        rx.Complete(chain, (uint)chain.WriteWritable([.. header, .. frame]));
    }

    [Theory]
    [InlineData(Features)]
    [InlineData(Features & ~VirtioFeatures.InOrder)]
    public void FramesArriveWholeAndInOrderOverManyLapsOfTheRingWhateverTheBatchSizes(ulong features)
    {
        using VirtioNetDevice net = Open(features);
        var rx = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: false);
        VirtioNetQueuePair pair = net.Pairs[0];
        var packets = new ReceivedPacket[32];
        int sent = 0, received = 0;
        for (int round = 0; round < 60; round++)
        {
            // 1 to 97 frames published before the driver looks: batches end inside and across bursts, and the ring wraps.
            int count = 1 + ((round * 37) % 97);
            for (int i = 0; i < count; i++)
            {
                Deliver(rx, Frame(60 + ((sent * 13) % 1400), sent));
                sent++;
            }

            int n;
            while ((n = pair.ReceiveBurst(packets)) > 0)
            {
                for (int i = 0; i < n; i++)
                {
                    Assert.Equal(Frame(60 + ((received * 13) % 1400), received), packets[i].Span.ToArray());
                    received++;
                }

                pair.ReleaseBurst(packets.AsSpan(0, n));
            }

            Assert.Equal(sent, received);
            Assert.Equal(net.ReceiveQueue.Size, rx.PendingAvailable);
        }

        Assert.True(sent > 10 * net.ReceiveQueue.Size, "the ring did not go round often enough to test the wrap");
        Assert.Equal(sent, pair.ReceiveStatistics.Packets);
        Assert.Equal(0, pair.ReceiveStatistics.Errors);
    }

    [Theory]
    [InlineData("id")]
    [InlineData("length")]
    [InlineData("used.idx")]
    public void ALieInsideABatchHandsOutOnlyTheFramesBeforeItAndRecoveryGetsEveryBufferBack(string lie)
    {
        using VirtioNetDevice net = Open();
        var rx = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: false);
        VirtioNetQueuePair pair = net.Pairs[0];
        int good = lie == "used.idx" ? 0 : 3;
        for (int i = 0; i < good; i++)
        {
            Deliver(rx, Frame(100, i));
        }

        switch (lie)
        {
            case "id":
                rx.PushUsed(4000, 100);
                break;
            case "length":
                Assert.True(rx.TryPop(out DeviceChain? chain));
                rx.Complete(chain, (uint)(chain.WritableCapacity + 1));
                break;
            default:
                // One more than every buffer posted.
                rx.SetUsedIdx((ushort)(net.ReceiveQueue.Size + 1));
                break;
        }

        var packets = new ReceivedPacket[32];
        int n = lie == "used.idx" ? 0 : pair.ReceiveBurst(packets);
        Assert.Equal(good, n);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(Frame(100, i), packets[i].Span.ToArray());
        }

        VirtioException e = Assert.Throws<VirtioException>(() => pair.ReceiveBurst(packets));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        Assert.True(net.ReceiveQueue.IsBroken);

        // The lent frames stay the caller's across the recovery and go back afterwards; nothing is lost.
        net.Recover();
        var fresh = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: false);
        pair.ReleaseBurst(packets.AsSpan(0, n));
        Assert.Equal(net.Pairs[0].ReceiveQueue.BufferCount, fresh.PendingAvailable);
        Deliver(fresh, Frame(200, 9));
        Assert.Equal(1, pair.ReceiveBurst(packets));
        Assert.Equal(Frame(200, 9), packets[0].Span.ToArray());
    }

    [Theory]
    [InlineData(Features, false)]
    [InlineData(Features & ~VirtioNetFeatures.MrgRxBuf, false)]
    [InlineData(VirtioNetFeatures.Mac, true)]
    [InlineData(VirtioNetFeatures.Mac | VirtioFeatures.AnyLayout, true)]
    public void EveryPostedReceiveBufferPutsTheFrameOnACacheLineAndNoTwoBuffersOverlap(ulong features, bool legacy)
    {
        using VirtioNetDevice net = VirtioNetDevice.Open(new SoftwareNetTransport(features, legacy), _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, AutoRecover = false });
        var rx = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: false);
        int header = net.HeaderLength;
        var taken = new List<(ulong Start, ulong End)>();
        while (rx.TryPop(out DeviceChain? chain))
        {
            // The frame's first byte: after the header, in the header's own buffer or in the next one (a legacy
            // device without ANY_LAYOUT gets the header in a descriptor of its own).
            DeviceBuffer first = chain.Buffers[0];
            ulong frame = first.Length == (uint)header ? chain.Buffers[1].Address : first.Address + (ulong)header;
            Assert.True(frame % 64 == 0, $"a frame would start at {frame:x}, {frame % 64} bytes into a cache line");
            taken.AddRange(chain.Buffers.Select(b => (b.Address, b.Address + b.Length)));
        }

        Assert.NotEmpty(taken);
        taken.Sort();
        for (int i = 1; i < taken.Count; i++)
        {
            Assert.True(taken[i].Start >= taken[i - 1].End, $"receive buffers overlap at {taken[i].Start:x}");
        }
    }
}
