using VirtioNet.Core;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The packed queue with VIRTIO_F_IN_ORDER against a software device that writes one used descriptor per batch and
/// skips the rest, and lies about it. Ref: virtio v1.2 §2.8.9.
/// </summary>
public sealed class PackedVirtqueueInOrderTests
{
    private static VirtqBuffer[] WritableChain(PackedQueueHarness h, int buffers, int length)
    {
        var chain = new VirtqBuffer[buffers];
        for (int i = 0; i < buffers; i++)
        {
            chain[i] = h.Writable(length, out _);
        }

        return chain;
    }

    private static List<UsedBuffer> TakeAll(PackedVirtqueue queue)
    {
        var taken = new List<UsedBuffer>();
        while (queue.TryTakeUsed(out UsedBuffer used))
        {
            taken.Add(used);
        }

        return taken;
    }

    [Fact]
    public void OneUsedDescriptorReturnsABatchOfChainsOfDifferentLengths()
    {
        using var h = new PackedQueueHarness(16, inOrder: true);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 100), 10));
        Assert.True(h.Queue.TryAdd(WritableChain(h, 3, 100), 11));
        Assert.True(h.Queue.TryAdd(WritableChain(h, 2, 100), 12));
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 100), 13));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();

        // One used descriptor at slot 0 naming the third chain's Buffer ID; the device skips 1 + 3 + 2 slots.
        h.Device.CompleteInOrderBatch(chains[..3], 150);
        Assert.Equal(6, h.Device.UsedSlot);

        Assert.Equal(new[] { new UsedBuffer(10, 100), new UsedBuffer(11, 300), new UsedBuffer(12, 150) }, TakeAll(h.Queue));
        Assert.Equal(6, h.Queue.GetState().LastUsedIndex);

        h.Device.CompleteInOrderBatch(chains[3..], 1);
        Assert.Equal(new[] { new UsedBuffer(13, 1) }, TakeAll(h.Queue));
        Assert.Equal(16, h.Queue.FreeDescriptors);
        Assert.Equal(0, h.Queue.Outstanding);
    }

    [Fact]
    public void AnOpenBatchCountsAsUsedThoughItsSkippedSlotsStillHoldTheDriversDescriptors()
    {
        using var h = new PackedQueueHarness(8, eventIdx: true, inOrder: true);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        h.Device.CompleteInOrderBatch(h.Device.PopAll(), 5);

        Assert.True(h.Queue.TryTakeUsed(out _));

        // Slot 1 was skipped: it still holds the driver's available descriptor, yet two chains of the batch remain.
        Assert.True(PackedRing.IsAvailable(h.Device.RawFlags(1), wrap: true));
        Assert.True(h.Queue.HasUsed);
        Assert.False(h.Queue.EnableInterrupts());
        Assert.Equal(2, TakeAll(h.Queue).Count);

        // The interrupt is asked for at the slot after the batch, never at one the device skipped.
        Assert.Equal(PackedRing.EventOffWrap(3, wrap: true), h.Device.DriverEventOffWrap);
        Assert.True(h.Queue.EnableInterrupts());
    }

    [Fact]
    public void ThousandsOfBatchesOfMixedChainsWrapTheRingManyTimes()
    {
        using var h = new PackedQueueHarness(13, indirect: true, inOrder: true, maxIndirectChain: 2);
        var random = new Random(38);
        int next = 0;
        int expected = 0;
        bool wrapSeenFalse = false;
        for (int round = 0; round < 1000; round++)
        {
            while (h.Queue.TryAdd(WritableChain(h, 1 + random.Next(3), 20), next))
            {
                next++;
            }

            h.Queue.KickPrepare();
            List<DeviceChain> chains = h.Device.PopAll();
            for (int start = 0; start < chains.Count;)
            {
                int count = 1 + random.Next(chains.Count - start);
                h.Device.CompleteInOrderBatch(chains.GetRange(start, count), 20);
                start += count;
            }

            foreach (UsedBuffer used in TakeAll(h.Queue))
            {
                Assert.Equal(expected++, used.Token);
            }

            Assert.Equal(13, h.Queue.FreeDescriptors);
            wrapSeenFalse |= h.Queue.GetState().UsedWrapCounter == false;
        }

        Assert.True(wrapSeenFalse);
        Assert.True(expected > 4000, $"only {expected} chains went round");
        Assert.False(h.Queue.IsBroken);
    }

    [Fact]
    public void AUsedDescriptorNamingABufferAlreadyTakenBreaksTheQueue()
    {
        using var h = new PackedQueueHarness(8, inOrder: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        h.Device.CompleteInOrderBatch(chains[..2], 1);
        Assert.Equal(2, TakeAll(h.Queue).Count);

        // Buffer 0 came back already; the oldest in flight is buffer 2.
        h.Device.PushUsed(chains[0].Head, 1, skip: 2);

        var e = Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        Assert.True(h.Queue.IsBroken);
        Assert.Throws<VirtioException>(() => h.Queue.HasUsed);
    }

    [Fact]
    public void AUsedDescriptorNamingABufferNotYetPublishedBreaksTheQueue()
    {
        using var h = new PackedQueueHarness(8, inOrder: true);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 0));
        h.Queue.KickPrepare();
        h.Device.PopAll();
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 1));

        // Buffer ID 1 is the second chain, added but never made available.
        h.Device.PushUsed(1, 1, skip: 2);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Contains("not in flight", h.Queue.BrokenReason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(8, 1u)]
    [InlineData(0, 33u)]
    public void AnOutOfRangeIdOrALengthPastTheLastChainBreaksTheQueue(ushort id, uint length)
    {
        using var h = new PackedQueueHarness(8, inOrder: true);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 0));
        h.Queue.KickPrepare();
        h.Device.PopAll();
        h.Device.PushUsed(id, length);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.IsBroken);
        Assert.Equal(1, h.Queue.Outstanding);
    }

    [Fact]
    public void DetachAllInTheMiddleOfABatchLeavesAFreshQueue()
    {
        using var h = new PackedQueueHarness(8, inOrder: true);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 2, 32), i));
        }

        h.Queue.KickPrepare();
        h.Device.CompleteInOrderBatch(h.Device.PopAll(), 4);
        Assert.True(h.Queue.TryTakeUsed(out _));

        int[] tokens = new int[8];
        Assert.Equal(2, h.Queue.DetachAll(tokens));
        Assert.False(h.Queue.HasUsed);

        var device = new SoftwarePackedDevice(h.Memory, h.Queue, eventIdx: false);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 9));
        h.Queue.KickPrepare();
        device.CompleteInOrderBatch(device.PopAll(), 6);
        Assert.Equal(new[] { new UsedBuffer(9, 6) }, TakeAll(h.Queue));
    }

    [Fact]
    public void NotificationDataNamesTheNextAvailableSlotAndTheDriverWrapCounter()
    {
        using var h = new PackedQueueHarness(4);
        Assert.Equal(0u | (0x8000u << 16), h.Queue.GetNotificationData());

        Assert.True(h.Queue.TryAdd(WritableChain(h, 3, 8), 0));
        h.Queue.KickPrepare();
        Assert.Equal(0x8003u, h.Queue.GetNotificationData() >> 16);

        h.Device.Loopback();
        Assert.True(h.Queue.TryTakeUsed(out _));

        // The next chain runs past the end of the ring: the driver's wrap counter flips to 0.
        Assert.True(h.Queue.TryAdd(WritableChain(h, 2, 8), 1));
        h.Queue.KickPrepare();
        Assert.Equal(0x0001u, h.Queue.GetNotificationData() >> 16);
        Assert.Equal(0u, h.Queue.GetNotificationData() & 0xFFFF);
    }
}
