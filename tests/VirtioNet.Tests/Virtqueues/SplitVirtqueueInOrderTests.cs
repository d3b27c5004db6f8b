using VirtioNet.Core;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The split queue with VIRTIO_F_IN_ORDER against a software device that returns batches with one used entry, and lies
/// about them. Ref: virtio v1.2 §2.7.9.
/// </summary>
public sealed class SplitVirtqueueInOrderTests
{
    private static VirtqBuffer[] WritableChain(SplitQueueHarness h, int buffers, int length)
    {
        var chain = new VirtqBuffer[buffers];
        for (int i = 0; i < buffers; i++)
        {
            chain[i] = h.Writable(length, out _);
        }

        return chain;
    }

    private static List<UsedBuffer> TakeAll(SplitVirtqueue queue)
    {
        var taken = new List<UsedBuffer>();
        while (queue.TryTakeUsed(out UsedBuffer used))
        {
            taken.Add(used);
        }

        return taken;
    }

    [Fact]
    public void DescriptorsAreHandedOutInRingOrderWrappingAtTheEndOfTheTable()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        var heads = new List<int>();
        for (int round = 0; round < 6; round++)
        {
            // Three-descriptor chains: heads 0, 3, 6 (6, 7, 0), 1, 4, 7 (7, 0, 1) ... in ring order, never reused early.
            Assert.True(h.Queue.TryAdd(WritableChain(h, 3, 64), round));
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
    public void ABatchedUsedEntryReturnsEveryChainOfTheBatchOldestFirst()
    {
        using var h = new SplitQueueHarness(16, inOrder: true);
        for (int i = 0; i < 5; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 100), 50 + i));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        h.Device.CompleteInOrderBatch(chains[..3], 42);
        h.Device.CompleteInOrderBatch(chains[3..], 7);

        List<UsedBuffer> taken = TakeAll(h.Queue);

        // The skipped chains were used completely (their whole writable length); the last of each batch says its own.
        Assert.Equal(
            new[] { new UsedBuffer(50, 100), new UsedBuffer(51, 100), new UsedBuffer(52, 42), new UsedBuffer(53, 100), new UsedBuffer(54, 7) },
            taken);
        Assert.Equal(0, h.Queue.Outstanding);
        Assert.Equal(16, h.Queue.FreeDescriptors);
        Assert.False(h.Queue.IsBroken);
    }

    [Fact]
    public void TransmitChainsOfABatchReportNoLengthWhateverTheDeviceSays()
    {
        using var h = new SplitQueueHarness(8, inOrder: true, indirect: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd([h.Readable(new byte[12]), h.Readable(new byte[60])], i));
        }

        h.Queue.KickPrepare();
        h.Device.CompleteInOrderBatch(h.Device.PopAll(), 72);

        Assert.All(TakeAll(h.Queue), u => Assert.Equal(0, u.Length));
        Assert.Equal(8, h.Queue.FreeDescriptors);
    }

    [Fact]
    public void AnOpenBatchCountsAsUsedAndKeepsInterruptsFromBeingAwaited()
    {
        using var h = new SplitQueueHarness(8, eventIdx: true, inOrder: true);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        h.Device.CompleteInOrderBatch(h.Device.PopAll(), 5);

        Assert.True(h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.HasUsed);
        Assert.False(h.Queue.EnableInterrupts());
        Assert.Equal(2, TakeAll(h.Queue).Count);

        // Once the batch is handed out, the interrupt is asked for at the entry after it.
        Assert.Equal(3, h.Device.UsedEvent);
        Assert.True(h.Queue.EnableInterrupts());
    }

    [Fact]
    public void ThousandsOfBatchesOfMixedChainsWrapTheRingAndTheIndexes()
    {
        using var h = new SplitQueueHarness(16, indirect: true, inOrder: true, maxIndirectChain: 2);
        var random = new Random(35);
        int next = 0;
        int expected = 0;
        for (int round = 0; round < 1000; round++)
        {
            // Chains of 1 (direct), 2 (indirect) or 3 (direct) buffers, as many as fit.
            while (h.Queue.TryAdd(WritableChain(h, 1 + random.Next(3), 20), next))
            {
                next++;
            }

            h.Queue.KickPrepare();
            List<DeviceChain> chains = h.Device.PopAll();
            for (int start = 0; start < chains.Count;)
            {
                int count = 1 + random.Next(chains.Count - start);
                h.Device.CompleteInOrderBatch(chains.GetRange(start, count), 3);
                start += count;
            }

            foreach (UsedBuffer used in TakeAll(h.Queue))
            {
                Assert.Equal(expected++, used.Token);
            }

            // Every buffer handed out above this loop was freed again, descriptors included.
            Assert.Equal(16, h.Queue.FreeDescriptors);
        }

        Assert.True(expected > 6000, $"only {expected} chains went round");
    }

    [Fact]
    public void AUsedEntryNamingAChainAlreadyTakenBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        h.Device.CompleteInOrderBatch(chains[..2], 1);
        Assert.Equal(2, TakeAll(h.Queue).Count);

        // The oldest chain in flight is now the third: naming the first again goes backwards.
        h.Device.PushUsedBatch(chains[0].Head, 1, 2);

        var e = Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        Assert.True(h.Queue.IsBroken);
        Assert.Throws<VirtioException>(() => h.Queue.TryAdd(h.OneReadable(), 9));
    }

    [Fact]
    public void ABatchReachingPastWhatUsedIdxCoversBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();

        // The entry names the fourth chain, but used.idx moved by only two.
        h.Device.PushUsedBatch(chains[3].Head, 1, 2);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Contains("IN_ORDER", h.Queue.BrokenReason, StringComparison.Ordinal);
        Assert.Equal(4, h.Queue.Outstanding);
    }

    [Fact]
    public void AUsedIndexCoveringAChainNotYetPublishedBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 0));
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 1));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 2));

        // Descriptor 2 heads the third chain, which the device was never shown.
        h.Device.PushUsedBatch(2, 1, 3);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.IsBroken);
        Assert.Equal(2, chains.Count);
    }

    [Fact]
    public void AUsedEntryNamingTheMiddleOfAChainBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 3, 32), 0));
        Assert.True(h.Queue.TryAdd(WritableChain(h, 3, 32), 1));
        h.Queue.KickPrepare();
        h.Device.PopAll();

        // Heads are 0 and 3; descriptor 1 is inside the first chain.
        h.Device.PushUsedBatch(1, 1, 2);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.IsBroken);
    }

    [Fact]
    public void ALengthPastTheLastChainsWritableBuffersBreaksTheQueue()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 0));
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 1));
        h.Queue.KickPrepare();
        h.Device.CompleteInOrderBatch(h.Device.PopAll(), 33);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Contains("33 bytes", h.Queue.BrokenReason, StringComparison.Ordinal);
    }

    [Fact]
    public void DetachAllInTheMiddleOfABatchLeavesAQueueThatStartsAgainAtDescriptorZero()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        h.Device.CompleteInOrderBatch(h.Device.PopAll()[..3], 4);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer first));
        Assert.Equal(0, first.Token);

        int[] tokens = new int[8];
        Assert.Equal(3, h.Queue.DetachAll(tokens));
        Assert.Equal(new[] { 1, 2, 3 }, tokens[..3].Order().ToArray());
        Assert.False(h.Queue.HasUsed);

        // As after a reset: a new device sees the first chain at descriptor 0 again.
        var device = new SoftwareSplitDevice(h.Memory, h.Queue, eventIdx: false);
        Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), 7));
        h.Queue.KickPrepare();
        Assert.True(device.TryPop(out DeviceChain? chain));
        Assert.Equal(0, chain.Head);
        device.CompleteInOrderBatch([chain], 9);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer again));
        Assert.Equal(new UsedBuffer(7, 9), again);
    }

    [Fact]
    public void WithoutInOrderAUsedEntryStillReturnsOnlyTheChainItNames()
    {
        using var h = new SplitQueueHarness(8);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(h.Queue.TryAdd(WritableChain(h, 1, 32), i));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();

        // Out of order and one entry per chain: the third first.
        h.Device.Complete(chains[2], 3);
        h.Device.Complete(chains[0], 1);
        Assert.Equal(new[] { new UsedBuffer(2, 3), new UsedBuffer(0, 1) }, TakeAll(h.Queue));
        Assert.Equal(1, h.Queue.Outstanding);
        Assert.False(h.Queue.InOrder);
    }

    [Fact]
    public void NotificationDataCarriesTheQueueIndexAndThePublishedAvailIndexAcrossItsWrap()
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
}
