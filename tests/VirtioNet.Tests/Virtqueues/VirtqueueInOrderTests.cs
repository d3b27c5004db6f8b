using VirtioNet.Core;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// VIRTIO_F_IN_ORDER on both ring layouts against a software device that returns a batch of chains with one used
/// entry (split) or one used descriptor (packed), and lies about it. The theories are the <see cref="IVirtqueue"/>
/// contract, run on each layout; the facts are what only one layout has (descriptor heads and used.idx on the split
/// ring, slots, skips and wrap counters on the packed one). Ref: virtio v1.2 §2.7.9, §2.8.9.
/// </summary>
public sealed class VirtqueueInOrderTests
{
    public static TheoryData<RingLayout> Layouts => [RingLayout.Split, RingLayout.Packed];

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ABatchReturnsEveryChainOldestFirstTheSkippedOnesUsedCompletely(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 16, inOrder: true);
        List<DeviceChain> chains = AddAndPop(h, [1, 3, 2, 1, 1], 100, firstToken: 10);

        // Two batches: the chains a batch skipped report their whole writable length, the last of each its own.
        h.CompleteInOrderBatch(chains[..3], 150);
        h.CompleteInOrderBatch(chains[3..], 7);

        Assert.Equal(
            new[] { new UsedBuffer(10, 100), new UsedBuffer(11, 300), new UsedBuffer(12, 150), new UsedBuffer(13, 100), new UsedBuffer(14, 7) },
            h.TakeAll());
        Assert.Equal(0, h.Virtqueue.Outstanding);
        Assert.Equal(16, h.Virtqueue.FreeDescriptors);
        Assert.False(h.Virtqueue.IsBroken);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void TransmitChainsOfABatchReportNoLengthWhateverTheDeviceSays(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, indirect: true, inOrder: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Virtqueue.TryAdd([h.Readable(new byte[12]), h.Readable(new byte[60])], i));
        }

        h.Virtqueue.KickPrepare();
        h.CompleteInOrderBatch(h.PopAll(), 72);

        List<UsedBuffer> taken = h.TakeAll();
        Assert.Equal(4, taken.Count);
        Assert.All(taken, u => Assert.Equal(0, u.Length));
        Assert.Equal(8, h.Virtqueue.FreeDescriptors);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void AnOpenBatchCountsAsUsedAndKeepsInterruptsFromBeingAwaited(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, eventIdx: true, inOrder: true);
        OpenABatchOfThree(h);

        Assert.True(h.Virtqueue.HasUsed);
        Assert.False(h.Virtqueue.EnableInterrupts());
        Assert.Equal(2, h.TakeAll().Count);
        Assert.True(h.Virtqueue.EnableInterrupts());
    }

    [Fact]
    public void SplitAsksForTheInterruptAtTheUsedEntryAfterAnOpenBatch()
    {
        using var h = new SplitQueueHarness(8, eventIdx: true, inOrder: true);
        OpenABatchOfThree(h);
        Assert.False(h.Queue.EnableInterrupts());
        h.TakeAll();

        // Once the batch is handed out, the interrupt is asked for at the entry after it.
        Assert.Equal(3, h.Device.UsedEvent);
    }

    [Fact]
    public void PackedAsksForTheInterruptAtTheSlotAfterTheBatchNeverAtOneTheDeviceSkipped()
    {
        using var h = new PackedQueueHarness(8, eventIdx: true, inOrder: true);
        OpenABatchOfThree(h);

        // Slot 1 was skipped: it still holds the driver's available descriptor, yet two chains of the batch remain.
        Assert.True(PackedRing.IsAvailable(h.Device.RawFlags(1), wrap: true));
        Assert.False(h.Queue.EnableInterrupts());
        h.TakeAll();

        Assert.Equal(PackedRing.EventOffWrap(3, wrap: true), h.Device.DriverEventOffWrap);
    }

    [Fact]
    public void PackedOneUsedDescriptorSkipsEveryDescriptorOfTheBatch()
    {
        using var h = new PackedQueueHarness(16, inOrder: true);
        List<DeviceChain> chains = AddAndPop(h, [1, 3, 2, 1], 100, firstToken: 10);

        // One used descriptor at slot 0 naming the third chain's Buffer ID; the device skips 1 + 3 + 2 slots.
        h.Device.CompleteInOrderBatch(chains[..3], 150);
        Assert.Equal(6, h.Device.UsedSlot);
        Assert.Equal(3, h.TakeAll().Count);
        Assert.Equal(6, h.Queue.GetState().LastUsedIndex);
    }

    [Theory]
    [InlineData(RingLayout.Split, 16, 35, 3u, 6000)]
    [InlineData(RingLayout.Packed, 13, 38, 20u, 4000)]
    public void ThousandsOfBatchesOfMixedChainsWrapTheRingManyTimes(RingLayout layout, int size, int seed, uint lastLength, int atLeast)
    {
        using var h = QueueHarness.Create(layout, size, indirect: true, inOrder: true, maxIndirectChain: 2);

        int chains = RunMixedBatches(h, seed, lastLength, () => { });

        Assert.True(chains > atLeast, $"only {chains} chains went round");
        Assert.False(h.Virtqueue.IsBroken);
    }

    [Fact]
    public void PackedUsedWrapCounterFlipsAsBatchesGoRoundTheRing()
    {
        using var h = new PackedQueueHarness(13, indirect: true, inOrder: true, maxIndirectChain: 2);
        bool wrapSeenFalse = false;

        RunMixedBatches(h, 38, 20, () => wrapSeenFalse |= h.Queue.GetState().UsedWrapCounter == false);

        Assert.True(wrapSeenFalse);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void AUsedEntryNamingAChainAlreadyTakenBreaksTheQueue(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, inOrder: true);
        List<DeviceChain> chains = AddAndPop(h, [1, 1, 1, 1], 32);
        h.CompleteInOrderBatch(chains[..2], 1);
        Assert.Equal(2, h.TakeAll().Count);

        // The first chain came back already; the oldest in flight is now the third.
        h.PushUsedBatch(chains[0].Head, 1, 2);

        var e = Assert.Throws<VirtioException>(() => h.Virtqueue.TryTakeUsed(out _));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        Assert.True(h.Virtqueue.IsBroken);
        Assert.Throws<VirtioException>(() => h.Virtqueue.TryAdd(h.OneReadable(), 9));
        Assert.Throws<VirtioException>(() => h.Virtqueue.HasUsed);
    }

    [Theory]
    [InlineData(RingLayout.Split, "past the last one taken")]
    [InlineData(RingLayout.Packed, "not in flight")]
    public void AUsedEntryNamingAChainNotYetPublishedBreaksTheQueue(RingLayout layout, string reason)
    {
        using var h = QueueHarness.Create(layout, 8, inOrder: true);
        AddAndPop(h, [1, 1], 32);
        Assert.True(h.Virtqueue.TryAdd(h.WritableChain(1, 32), 2));

        // Descriptor (Buffer ID) 2 heads the third chain, which the device was never shown.
        h.PushUsedBatch(2, 1, 3);

        Assert.Throws<VirtioException>(() => h.Virtqueue.TryTakeUsed(out _));
        Assert.True(h.Virtqueue.IsBroken);
        Assert.Contains(reason, h.Virtqueue.GetState().BrokenReason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(RingLayout.Split, 1)]
    [InlineData(RingLayout.Split, 2)]
    [InlineData(RingLayout.Packed, 1)]
    [InlineData(RingLayout.Packed, 2)]
    public void ALengthPastTheLastChainsWritableBuffersBreaksTheQueue(RingLayout layout, int batch)
    {
        using var h = QueueHarness.Create(layout, 8, inOrder: true);
        List<DeviceChain> chains = AddAndPop(h, [.. Enumerable.Repeat(1, batch)], 32);

        // The batch's chains hold 32 bytes each: the length is judged against the last one alone.
        h.CompleteInOrderBatch(chains, 33);

        Assert.Throws<VirtioException>(() => h.Virtqueue.TryTakeUsed(out _));
        Assert.True(h.Virtqueue.IsBroken);
        Assert.Contains("33 bytes", h.Virtqueue.GetState().BrokenReason, StringComparison.Ordinal);
        Assert.Equal(batch, h.Virtqueue.Outstanding);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void AnOutOfRangeIdBreaksTheQueue(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, inOrder: true);
        AddAndPop(h, [1], 32);

        h.PushUsedBatch(8, 1, 1);

        Assert.Throws<VirtioException>(() => h.Virtqueue.TryTakeUsed(out _));
        Assert.True(h.Virtqueue.IsBroken);
        Assert.Equal(1, h.Virtqueue.Outstanding);
    }

    [Fact]
    public void SplitABatchReachingPastWhatUsedIdxCoversBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        List<DeviceChain> chains = AddAndPop(h, [1, 1, 1, 1], 32);

        // The entry names the fourth chain, but used.idx moved by only two.
        h.Device.PushUsedBatch(chains[3].Head, 1, 2);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Contains("IN_ORDER", h.Queue.BrokenReason, StringComparison.Ordinal);
        Assert.Equal(4, h.Queue.Outstanding);
    }

    [Fact]
    public void SplitAUsedEntryNamingTheMiddleOfAChainBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        AddAndPop(h, [3, 3], 32);

        // Heads are 0 and 3; descriptor 1 is inside the first chain.
        h.Device.PushUsedBatch(1, 1, 2);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.IsBroken);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void DetachAllInTheMiddleOfABatchLeavesAQueueThatStartsAgainAtTheFirstDescriptor(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, inOrder: true);
        List<DeviceChain> chains = AddAndPop(h, [2, 2, 2, 2], 32);
        h.CompleteInOrderBatch(chains[..3], 4);
        Assert.True(h.Virtqueue.TryTakeUsed(out UsedBuffer first));
        Assert.Equal(0, first.Token);

        int[] tokens = new int[8];
        Assert.Equal(3, h.Virtqueue.DetachAll(tokens));
        Assert.Equal(new[] { 1, 2, 3 }, tokens[..3].Order().ToArray());
        Assert.False(h.Virtqueue.HasUsed);

        // As after a reset: a new device sees the first chain at the ring's first descriptor again.
        h.AttachNewDevice();
        Assert.True(h.Virtqueue.TryAdd(h.WritableChain(1, 32), 7));
        h.Virtqueue.KickPrepare();
        Assert.True(h.TryPop(out DeviceChain? chain));
        Assert.Equal(0, chain.Head);
        h.CompleteInOrderBatch([chain], 9);
        Assert.Equal(new[] { new UsedBuffer(7, 9) }, h.TakeAll());
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void WithoutInOrderAUsedEntryStillReturnsOnlyTheChainItNames(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8);
        List<DeviceChain> chains = AddAndPop(h, [1, 1, 1], 32);

        // Out of order and one entry per chain: the third first.
        h.Complete(chains[2], 3);
        h.Complete(chains[0], 1);
        Assert.Equal(new[] { new UsedBuffer(2, 3), new UsedBuffer(0, 1) }, h.TakeAll());
        Assert.Equal(1, h.Virtqueue.Outstanding);
        Assert.False(h.InOrder);
    }

    [Fact]
    public void SplitDescriptorsAreHandedOutInRingOrderWrappingAtTheEndOfTheTable()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        var heads = new List<int>();
        for (int round = 0; round < 6; round++)
        {
            // Three-descriptor chains: heads 0, 3, 6 (6, 7, 0), 1, 4, 7 (7, 0, 1) ... in ring order, never reused early.
            Assert.True(h.Queue.TryAdd(h.WritableChain(3, 64), round));
            h.Queue.KickPrepare();
            Assert.True(h.Device.TryPop(out DeviceChain? chain));
            Assert.Equal(3, chain.Buffers.Count);
            heads.Add(chain.Head);
            h.Device.Complete(chain, 10);
            Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
            Assert.Equal(round, used.Token);
        }

        Assert.Equal(new[] { 0, 3, 6, 1, 4, 7 }, heads);

        // §2.7.5: next is x + 1, and 0 for the last descriptor of the table.
        Assert.Equal(0, h.Queue.GetDescriptorShadow(7).Next);
        Assert.Equal(7, h.Queue.GetDescriptorShadow(6).Next);
    }

    [Fact]
    public void SplitNotificationDataCarriesTheQueueIndexAndThePublishedAvailIndexAcrossItsWrap()
    {
        using var memory = new HeapDmaAllocator();
        var queue = new SplitVirtqueue(5, 2, memory, new VirtqueueOptions());
        var device = new SoftwareSplitDevice(memory, queue, eventIdx: false);
        var buffer = memory.Allocate(16, 8);
        VirtqBuffer[] chain = [new VirtqBuffer(buffer.DeviceAddress, 16, DeviceWritable: false)];
        Assert.Equal(5u, queue.GetNotificationData());
        for (int i = 1; i <= 70000; i++)
        {
            Assert.True(queue.TryAdd(chain, i));
            Assert.True(queue.KickPrepare());
            uint data = queue.GetNotificationData();
            Assert.Equal(5u, data & 0xFFFF);

            // next_off is avail.idx's low 15 bits and next_wrap its top bit: together avail.idx itself (§2.9).
            Assert.Equal((ushort)i, (ushort)(data >> 16));
            Assert.True(device.TryPop(out DeviceChain? popped));
            device.Complete(popped, 0);
            Assert.True(queue.TryTakeUsed(out _));
        }

        queue.Dispose();
        memory.Free(buffer);
    }

    [Fact]
    public void PackedNotificationDataNamesTheNextAvailableSlotAndTheDriverWrapCounter()
    {
        using var h = new PackedQueueHarness(4);
        Assert.Equal(0u | (0x8000u << 16), h.Queue.GetNotificationData());

        Assert.True(h.Queue.TryAdd(h.WritableChain(3, 8), 0));
        h.Queue.KickPrepare();
        Assert.Equal(0x8003u, h.Queue.GetNotificationData() >> 16);

        h.Device.Loopback();
        Assert.True(h.Queue.TryTakeUsed(out _));

        // The next chain runs past the end of the ring: the driver's wrap counter flips to 0.
        Assert.True(h.Queue.TryAdd(h.WritableChain(2, 8), 1));
        h.Queue.KickPrepare();
        Assert.Equal(0x0001u, h.Queue.GetNotificationData() >> 16);
        Assert.Equal(0u, h.Queue.GetNotificationData() & 0xFFFF);
    }

    // Adds one chain per entry of buffersPerChain (that many writable buffers of length bytes each), tokens from
    // firstToken on, publishes them, and has the device pop them all.
    private static List<DeviceChain> AddAndPop(QueueHarness h, int[] buffersPerChain, int length, int firstToken = 0)
    {
        for (int i = 0; i < buffersPerChain.Length; i++)
        {
            Assert.True(h.Virtqueue.TryAdd(h.WritableChain(buffersPerChain[i], length), firstToken + i));
        }

        h.Virtqueue.KickPrepare();
        List<DeviceChain> chains = h.PopAll();
        Assert.Equal(buffersPerChain.Length, chains.Count);
        return chains;
    }

    // Three one-buffer chains returned as one batch, and the first of them taken: the batch is open.
    private static void OpenABatchOfThree(QueueHarness h)
    {
        h.CompleteInOrderBatch(AddAndPop(h, [1, 1, 1], 32), 5);
        Assert.True(h.Virtqueue.TryTakeUsed(out _));
    }

    // A thousand rounds: chains of 1 (direct), 2 (indirect) or 3 (direct) buffers, as many as fit, returned in batches
    // of random sizes; every chain comes back in order and every descriptor is free again after each round. Returns
    // how many chains went round; afterRound runs after each round.
    private static int RunMixedBatches(QueueHarness h, int seed, uint lastLength, Action afterRound)
    {
        var random = new Random(seed);
        int next = 0;
        int expected = 0;
        for (int round = 0; round < 1000; round++)
        {
            while (h.Virtqueue.TryAdd(h.WritableChain(1 + random.Next(3), 20), next))
            {
                next++;
            }

            h.Virtqueue.KickPrepare();
            List<DeviceChain> chains = h.PopAll();
            for (int start = 0; start < chains.Count;)
            {
                int count = 1 + random.Next(chains.Count - start);
                h.CompleteInOrderBatch(chains.GetRange(start, count), lastLength);
                start += count;
            }

            foreach (UsedBuffer used in h.TakeAll())
            {
                Assert.Equal(expected++, used.Token);
            }

            Assert.Equal(h.Virtqueue.Size, h.Virtqueue.FreeDescriptors);
            afterRound();
        }

        return expected;
    }
}
