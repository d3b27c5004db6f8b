using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The batched paths of a split ring: <see cref="SplitVirtqueue.TakeUsedBatch"/> (one used.idx read per batch, used_event
/// written once) and <see cref="SplitVirtqueue.TryAddWritableSlots"/> (a fixed-slot refill that stores nothing but the
/// index), against a software device: wrap, a ring reset, and a device that lies about used.idx, ids or lengths.
/// Ref: virtio v1.2 §2.7.8, §2.7.9, §2.7.10.
/// </summary>
public sealed class SplitVirtqueueBatchTakeTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BatchesTakeEveryUsedBufferWithItsLengthAcrossManyWrapsOfTheRing(bool inOrder)
    {
        using var h = new SplitQueueHarness(8, eventIdx: true, inOrder: inOrder);
        DmaRegion pool = h.Buffer(8 * 256);
        int[] tokens = new int[8];
        var used = new UsedBuffer[5];
        int nextToken = 0;
        for (int lap = 0; lap < 25; lap++)
        {
            // 3 to 8 buffers a lap, so the ring index wraps at different places; tokens in ring order (fixed slots).
            int count = 3 + (lap % 6);
            for (int i = 0; i < count; i++)
            {
                tokens[i] = nextToken++ % 8;
            }

            Assert.Equal(count, h.Queue.TryAddWritableSlots(tokens.AsSpan(0, count), pool.DeviceAddress, 256, 256));
            h.Queue.KickPrepare();
            List<Fakes.DeviceChain> chains = h.PopAll();
            Assert.Equal(count, chains.Count);
            for (int i = 0; i < count; i++)
            {
                DeviceBuffer only = Assert.Single(chains[i].Buffers);
                Assert.Equal((pool.DeviceAddress + (ulong)(tokens[i] * 256), 256u, true), (only.Address, only.Length, only.Writable));
            }

            foreach (Fakes.DeviceChain chain in chains)
            {
                h.Complete(chain, (uint)(60 + lap));
            }

            var taken = new List<UsedBuffer>();
            int n;
            while ((n = h.Queue.TakeUsedBatch(used)) > 0)
            {
                taken.AddRange(used.AsSpan(0, n).ToArray());
            }

            Assert.Equal(tokens.AsSpan(0, count).ToArray(), taken.Select(u => u.Token));
            Assert.All(taken, u => Assert.Equal(60 + lap, u.Length));
            Assert.Equal(8, h.Queue.FreeDescriptors);

            // EVENT_IDX: after the batch, the driver asks for an interrupt at the next entry (written once, not per entry).
            Assert.Equal(h.Device.UsedIdx, h.Device.UsedEvent);
        }
    }

    [Fact]
    public void UsedIdxIsReadOnceForABatchAndEntriesPublishedAfterTheReadWaitForTheNextBatch()
    {
        using var h = new SplitQueueHarness(8);
        for (int i = 0; i < 6; i++)
        {
            Assert.True(h.Queue.TryAddOne(h.Buffer(128).DeviceAddress, 128, deviceWritable: true, token: i));
        }

        h.Queue.KickPrepare();
        List<Fakes.DeviceChain> chains = h.PopAll();
        for (int i = 0; i < 3; i++)
        {
            h.Complete(chains[i], 100);
        }

        var used = new UsedBuffer[8];
        Assert.Equal(2, h.Queue.TakeUsedBatch(used.AsSpan(0, 2)));

        // Two more published now: the next batch hands out the one left from the last read of used.idx, without a new read.
        h.Complete(chains[3], 100);
        h.Complete(chains[4], 100);
        Assert.Equal(1, h.Queue.TakeUsedBatch(used));
        Assert.Equal(2, used[0].Token);
        Assert.Equal(2, h.Queue.TakeUsedBatch(used));
        Assert.Equal(new[] { 3, 4 }, used.AsSpan(0, 2).ToArray().Select(u => u.Token));
        Assert.Equal(0, h.Queue.TakeUsedBatch(used));
    }

    [Theory]
    [InlineData("id", false)]
    [InlineData("id", true)]
    [InlineData("length", false)]
    [InlineData("length", true)]
    public void AGoodPrefixIsHandedOutAndALieLaterInTheBatchBreaksTheQueueForTheNextCall(string lie, bool inOrder)
    {
        using var h = new SplitQueueHarness(8, inOrder: inOrder);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAddOne(h.Buffer(128).DeviceAddress, 128, deviceWritable: true, token: 10 + i));
        }

        h.Queue.KickPrepare();
        List<Fakes.DeviceChain> chains = h.PopAll();
        h.Complete(chains[0], 64);
        h.Complete(chains[1], 64);
        if (lie == "id")
        {
            h.Device.PushUsed(77, 64);
        }
        else
        {
            h.Complete(chains[2], 129);
        }

        var used = new UsedBuffer[8];
        Assert.Equal(2, h.Queue.TakeUsedBatch(used));
        Assert.Equal(new[] { new UsedBuffer(10, 64), new UsedBuffer(11, 64) }, used.AsSpan(0, 2).ToArray());
        Assert.True(h.Queue.IsBroken);
        VirtioException e = Assert.Throws<VirtioException>(() => h.Queue.TakeUsedBatch(used));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);

        // The chains the device still held come back on a reset, so nothing is lost: 2 taken plus 2 detached.
        int[] detached = new int[4];
        Assert.Equal(2, h.Queue.DetachAllAfterDeviceReset(detached));
        Assert.False(h.Queue.IsBroken);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ALieInTheFirstEntryOrInUsedIdxThrowsAtOnceAndHandsOutNothing(bool inOrder)
    {
        using var h = new SplitQueueHarness(8, inOrder: inOrder);
        for (int i = 0; i < 2; i++)
        {
            Assert.True(h.Queue.TryAddOne(h.Buffer(128).DeviceAddress, 128, deviceWritable: true, token: i));
        }

        h.Queue.KickPrepare();
        h.PopAll();

        // used.idx three ahead with two chains in flight.
        h.Device.SetUsedIdx(3);
        var used = new UsedBuffer[8];
        Assert.Throws<VirtioException>(() => h.Queue.TakeUsedBatch(used));
        Assert.True(h.Queue.IsBroken);
        Assert.Equal(2, h.Queue.Outstanding);
    }

    [Fact]
    public void AFixedSlotRefillStoresNothingInTheRingButTheIndex()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        DmaRegion pool = h.Buffer(8 * 128);
        int[] slots = [0, 1, 2, 3, 4, 5, 6, 7];
        Assert.Equal(8, h.Queue.TryAddWritableSlots(slots, pool.DeviceAddress, 128, 128));
        h.Queue.KickPrepare();
        List<Fakes.DeviceChain> chains = h.PopAll();
        h.CompleteInOrderBatch(chains, 128);
        var used = new UsedBuffer[8];
        Assert.Equal(8, h.Queue.TakeUsedBatch(used));

        // Second lap: the same slots in the same order land in the same descriptors and avail entries.
        byte[] table = h.Memory.Map(h.Queue.DescriptorArea, 8 * 16).ToArray();
        byte[] availEntries = h.Memory.Map(h.Queue.DriverArea + 4, 8 * 2).ToArray();
        Assert.Equal(8, h.Queue.TryAddWritableSlots(slots, pool.DeviceAddress, 128, 128));
        Assert.Equal(table, h.Memory.Map(h.Queue.DescriptorArea, 8 * 16).ToArray());
        Assert.Equal(availEntries, h.Memory.Map(h.Queue.DriverArea + 4, 8 * 2).ToArray());

        // Published by the index alone, and the device finds each slot where it was.
        h.Queue.KickPrepare();
        Assert.Equal(slots.Select(s => pool.DeviceAddress + (ulong)(s * 128)), h.PopAll().Select(c => Assert.Single(c.Buffers).Address));
    }

    [Fact]
    public void ARefillOfMoreSlotsThanTheRingHasRoomForAddsWhatFits()
    {
        using var h = new SplitQueueHarness(4);
        DmaRegion pool = h.Buffer(8 * 64);
        Assert.Equal(4, h.Queue.TryAddWritableSlots([0, 1, 2, 3, 4, 5], pool.DeviceAddress, 64, 64));
        Assert.Equal(0, h.Queue.TryAddWritableSlots([4, 5], pool.DeviceAddress, 64, 64));
        Assert.Equal(4, h.Queue.Outstanding);
    }
}
