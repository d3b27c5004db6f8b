using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class SplitVirtqueueTests
{
    [Fact]
    public void ReadableChainReachesTheDeviceWithItsContents()
    {
        using var h = new SplitQueueHarness(8);
        byte[] header = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        byte[] payload = "a frame's payload"u8.ToArray();
        VirtqBuffer[] chain = [h.Readable(header), h.Readable(payload)];

        Assert.True(h.Queue.TryAdd(chain, token: 42));
        Assert.True(h.Queue.KickPrepare());

        Assert.True(h.Device.TryPop(out DeviceChain? popped));
        Assert.False(popped.Indirect);
        Assert.Equal(2, popped.Buffers.Count);
        Assert.Equal(chain[0].Address, popped.Buffers[0].Address);
        Assert.Equal(chain[1].Length, popped.Buffers[1].Length);
        Assert.Equal([.. header, .. payload], popped.ReadReadable());

        h.Device.Complete(popped, 0);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(42, 0), used);
        Assert.False(h.Queue.TryTakeUsed(out _));
        Assert.Equal(8, h.Queue.FreeDescriptors);
        Assert.Equal(0, h.Queue.Outstanding);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WritableBuffersComeBackWithWhatTheDeviceWrote(bool indirect)
    {
        using var h = new SplitQueueHarness(8, indirect: indirect);
        byte[] message = "hello, virtio!"u8.ToArray();
        VirtqBuffer[] chain = [h.Readable(message), h.Writable(4, out DmaRegion first), h.Writable(32, out DmaRegion second)];

        Assert.True(h.Queue.TryAdd(chain, token: 7));
        h.Queue.KickPrepare();
        Assert.Equal(1, h.Device.Loopback());

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(7, used.Token);
        Assert.Equal(message.Length, used.Length);
        Assert.Equal(message.AsSpan(0, 4), first.Span);
        Assert.Equal(message.AsSpan(4), second.Span[..(message.Length - 4)]);
        Assert.True(second.Span[(message.Length - 4)..].IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void ChainsAreInvisibleToTheDeviceUntilKickPrepare()
    {
        using var h = new SplitQueueHarness(8);
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 1));
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 2));

        Assert.Equal(0, h.Device.AvailIdx);
        Assert.False(h.Device.TryPop(out _));

        Assert.True(h.Queue.KickPrepare());
        Assert.Equal(2, h.Device.AvailIdx);
        Assert.Equal(2, h.Device.PendingAvailable);
    }

    [Fact]
    public void KickPrepareWithNothingAddedAsksForNoNotification()
    {
        using var h = new SplitQueueHarness(8);
        Assert.False(h.Queue.KickPrepare());
        h.Queue.TryAdd(h.OneReadable(), 1);
        Assert.True(h.Queue.KickPrepare());
        Assert.False(h.Queue.KickPrepare());
    }

    [Fact]
    public void AFullRingRefusesChainsUntilOneComesBack()
    {
        using var h = new SplitQueueHarness(8);
        for (int i = 0; i < 8; i++)
        {
            Assert.True(h.Queue.TryAdd(h.OneReadable(), i));
        }

        VirtqBuffer[] extra = h.OneReadable();
        Assert.False(h.Queue.TryAdd(extra, 99));
        Assert.Equal(0, h.Queue.FreeDescriptors);
        Assert.Equal(8, h.Queue.Outstanding);

        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? chain));
        h.Device.Complete(chain, 0);
        Assert.False(h.Queue.TryAdd(extra, 99));

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(0, used.Token);
        Assert.True(h.Queue.TryAdd(extra, 99));
        Assert.False(h.Queue.TryAdd(extra, 100));
    }

    [Fact]
    public void DirectChainsCostOneDescriptorPerBuffer()
    {
        using var h = new SplitQueueHarness(8);
        VirtqBuffer[] three = [h.Readable(new byte[10]), h.Readable(new byte[20]), h.Writable(30, out _)];
        VirtqBuffer[] two = [h.Readable(new byte[10]), h.Writable(30, out _)];

        Assert.True(h.Queue.TryAdd(three, 1));
        Assert.Equal(5, h.Queue.FreeDescriptors);
        Assert.True(h.Queue.TryAdd(three, 2));
        Assert.Equal(2, h.Queue.FreeDescriptors);
        Assert.False(h.Queue.TryAdd(three, 3));
        Assert.True(h.Queue.TryAdd(two, 4));
        Assert.Equal(0, h.Queue.FreeDescriptors);

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        Assert.Equal([3, 3, 2], chains.ConvertAll(c => c.Buffers.Count));
        Assert.All(chains, c => Assert.False(c.Indirect));

        // Out of order completion: the free list must take any chain back.
        h.Device.Complete(chains[1], 30);
        h.Device.Complete(chains[2], 1);
        h.Device.Complete(chains[0], 0);
        int[] tokens = TakeAllTokens(h.Queue);
        Assert.Equal([2, 4, 1], tokens);
        Assert.Equal(8, h.Queue.FreeDescriptors);

        // The recycled descriptors chain correctly again.
        Assert.True(h.Queue.TryAdd(three, 5));
        Assert.True(h.Queue.TryAdd(three, 6));
        h.Queue.KickPrepare();
        Assert.Equal([3, 3], h.Device.PopAll().ConvertAll(c => c.Buffers.Count));
    }

    [Fact]
    public void IndirectChainsCostOneRingDescriptor()
    {
        using var h = new SplitQueueHarness(4, indirect: true);
        Assert.True(h.Queue.UsesIndirectDescriptors);
        VirtqBuffer[] chain = [h.Readable("abc"u8), h.Readable("def"u8), h.Writable(8, out _)];

        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd(chain, i));
        }

        Assert.Equal(0, h.Queue.FreeDescriptors);
        Assert.False(h.Queue.TryAdd(chain, 4));

        h.Queue.KickPrepare();
        List<DeviceChain> popped = h.Device.PopAll();
        Assert.Equal(4, popped.Count);
        Assert.All(popped, c =>
        {
            Assert.True(c.Indirect);
            Assert.Equal(3, c.Buffers.Count);
            Assert.Equal("abcdef"u8.ToArray(), c.ReadReadable());
            Assert.Equal([false, false, true], [.. c.Buffers.Select(b => b.Writable)]);
        });

        foreach (DeviceChain c in popped)
        {
            h.Device.Complete(c, 6);
        }

        Assert.Equal([0, 1, 2, 3], TakeAllTokens(h.Queue));
        Assert.Equal(4, h.Queue.FreeDescriptors);
    }

    [Fact]
    public void SingleBufferChainsDoNotUseIndirectTables()
    {
        using var h = new SplitQueueHarness(4, indirect: true);
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? chain));
        Assert.False(chain.Indirect);
    }

    [Fact]
    public void ChainsLongerThanMaxIndirectChainFallBackToDirectDescriptors()
    {
        using var h = new SplitQueueHarness(8, indirect: true, maxIndirectChain: 2);
        VirtqBuffer[] two = [h.Readable("ab"u8), h.Writable(2, out _)];
        VirtqBuffer[] three = [h.Readable("ab"u8), h.Readable("cd"u8), h.Writable(4, out _)];

        Assert.True(h.Queue.TryAdd(two, 1));
        Assert.Equal(7, h.Queue.FreeDescriptors);
        Assert.True(h.Queue.TryAdd(three, 2));
        Assert.Equal(4, h.Queue.FreeDescriptors);

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        Assert.True(chains[0].Indirect);
        Assert.False(chains[1].Indirect);
        Assert.Equal(3, chains[1].Buffers.Count);
    }

    [Fact]
    public void InvalidChainsAreRejectedAndLeaveTheQueueUntouched()
    {
        using var h = new SplitQueueHarness(4);
        VirtqBuffer readable = h.Readable("x"u8);
        VirtqBuffer writable = h.Writable(4, out _);

        Assert.Throws<ArgumentException>(() => h.Queue.TryAdd([], 1));
        Assert.Throws<ArgumentException>(() => h.Queue.TryAdd([writable, readable], 1));
        Assert.Throws<ArgumentException>(() => h.Queue.TryAdd([readable, readable, readable, readable, readable], 1));
        Assert.Throws<ArgumentException>(() => h.Queue.TryAdd(
            [new VirtqBuffer(writable.Address, uint.MaxValue, true), new VirtqBuffer(writable.Address, 1, true)], 1));

        Assert.Equal(4, h.Queue.FreeDescriptors);
        Assert.Equal(0, h.Queue.Outstanding);
        Assert.False(h.Queue.KickPrepare());
        Assert.False(h.Queue.IsBroken);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void IndexesWrapPast65535(bool eventIdx, bool indirect)
    {
        // Up to three chains of two buffers in flight: 6 descriptors direct, 3 with indirect tables.
        using var h = new SplitQueueHarness(8, eventIdx: eventIdx, indirect: indirect);
        VirtqBuffer[][] chains = new VirtqBuffer[3][];
        DmaRegion[] inputs = new DmaRegion[3];
        DmaRegion[] outputs = new DmaRegion[3];
        for (int i = 0; i < 3; i++)
        {
            inputs[i] = h.Buffer(4);
            outputs[i] = h.Buffer(4);
            chains[i] = [new VirtqBuffer(inputs[i].DeviceAddress, 4, false), new VirtqBuffer(outputs[i].DeviceAddress, 4, true)];
        }

        int added = 0;
        int cycles = 0;
        while (added < 70_000 * 2)
        {
            int batch = (cycles % 3) + 1;
            for (int i = 0; i < batch; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(inputs[i].Span, added + i);
                Assert.True(h.Queue.TryAdd(chains[i], added + i));
            }

            // The device asks for every notification (avail_event = its next entry) and the driver asks for every
            // interrupt, so across the wrap both decisions must keep saying yes.
            Assert.True(h.Queue.KickPrepare());
            Assert.Equal(batch, h.Device.Loopback());
            Assert.True(h.Device.TakeInterruptDecision());

            for (int i = 0; i < batch; i++)
            {
                Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
                Assert.Equal(added + i, used.Token);
                Assert.Equal(4, used.Length);
                Assert.Equal(added + i, BinaryPrimitives.ReadInt32LittleEndian(outputs[i].Span));
            }

            Assert.False(h.Queue.TryTakeUsed(out _));
            added += batch;
            cycles++;
        }

        Assert.True(added > 2 * 65536);
        VirtqueueState state = h.Queue.GetState();
        Assert.Equal((ushort)added, state.AvailableIndex);
        Assert.Equal((ushort)added, state.LastUsedIndex);
        Assert.Equal((ushort)added, h.Device.AvailIdx);
        Assert.Equal((ushort)added, h.Device.UsedIdx);
        Assert.Equal(8, h.Queue.FreeDescriptors);
        Assert.True(h.Memory.AllGuardsIntact());
    }

    [Fact]
    public void AreasAreDeviceAddressesWithTheAlignmentTheSpecRequires()
    {
        using var h = new SplitQueueHarness(256);
        SplitVirtqueue q = h.Queue;

        Assert.True(q.DescriptorArea >= HeapDmaAllocator.DefaultDeviceBase);
        Assert.Equal(0UL, q.DescriptorArea % 16);
        Assert.Equal(0UL, q.DriverArea % 2);
        Assert.Equal(0UL, q.DeviceArea % 4);
        Assert.True(q.DriverArea >= q.DescriptorArea + (16 * 256));
        Assert.True(q.DeviceArea >= q.DriverArea + 6 + (2 * 256));
    }

    [Theory]
    [InlineData(256)]
    [InlineData(1024)]
    public void LegacyQueuesFormOneBlockAndWorkEndToEnd(int size)
    {
        using var h = new SplitQueueHarness(size, legacyAlign: 4096);
        SplitVirtqueue q = h.Queue;
        var layout = new SplitQueueLayout(size, 4096);

        Assert.Equal(0UL, q.DescriptorArea % 4096);
        Assert.Equal(q.DescriptorArea + (ulong)layout.AvailableRingOffset, q.DriverArea);
        Assert.Equal(q.DescriptorArea + (ulong)layout.UsedRingOffset, q.DeviceArea);
        Assert.Equal(0UL, q.DeviceArea % 4096);

        // The whole legacy block must be inside one allocation.
        h.Memory.Translate(q.DescriptorArea, layout.TotalLength);

        VirtqBuffer[] chain = [h.Readable("legacy"u8), h.Writable(6, out DmaRegion reply)];
        Assert.True(q.TryAdd(chain, 5));
        Assert.True(q.KickPrepare());
        Assert.Equal(1, h.Device.Loopback());
        Assert.True(q.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(5, 6), used);
        Assert.Equal("legacy"u8.ToArray(), reply.Span.ToArray());
    }

    [Fact]
    public void DetachAllReturnsEveryOutstandingToken()
    {
        using var h = new SplitQueueHarness(8, indirect: true);
        VirtqBuffer[] pair = [h.Readable("ab"u8), h.Writable(2, out _)];

        // 10 taken back; 11 completed but not taken; 12 popped only; 13 published only; 14 and 15 not even published.
        for (int token = 10; token <= 13; token++)
        {
            Assert.True(h.Queue.TryAdd(token == 11 ? h.OneReadable() : pair, token));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = [.. Enumerable.Range(0, 3).Select(_ => { Assert.True(h.Device.TryPop(out DeviceChain? c)); return c; })];
        h.Device.Complete(chains[0], 2);
        h.Device.Complete(chains[1], 0);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer taken));
        Assert.Equal(10, taken.Token);
        Assert.True(h.Queue.TryAdd(pair, 14));
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 15));

        Assert.Throws<ArgumentException>(() => h.Queue.DetachAll(new int[4]));

        int[] tokens = new int[8];
        int count = h.Queue.DetachAll(tokens);

        Assert.Equal(5, count);
        Assert.Equal([11, 12, 13, 14, 15], tokens[..count].Order().ToArray());
        Assert.Equal(0, h.Queue.Outstanding);
        Assert.Equal(8, h.Queue.FreeDescriptors);

        // The queue is as new, as after a device reset: a fresh device sees an empty ring and it works again.
        var device = new SoftwareSplitDevice(h.Memory, h.Queue, eventIdx: false);
        Assert.Equal(0, device.AvailIdx);
        Assert.True(h.Queue.TryAdd(pair, 20));
        Assert.True(h.Queue.KickPrepare());
        Assert.Equal(1, device.Loopback());
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer again));
        Assert.Equal(new UsedBuffer(20, 2), again);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DisposeReturnsEveryAllocation(bool indirect)
    {
        using var memory = new HeapDmaAllocator();
        var queue = new SplitVirtqueue(3, 64, memory, new VirtqueueOptions { IndirectDesc = indirect, EventIdx = true });
        Assert.Equal(indirect ? 2 : 1, memory.OutstandingAllocations);

        DmaRegion data = memory.Allocate(64, 8);
        Assert.True(queue.TryAdd([new VirtqBuffer(data.DeviceAddress, 32, false), new VirtqBuffer(data.DeviceAddress + 32, 32, true)], 1));
        queue.KickPrepare();

        queue.Dispose();
        queue.Dispose();
        memory.Free(data);

        Assert.Equal(0, memory.OutstandingAllocations);
        Assert.Throws<ObjectDisposedException>(() => queue.TryAdd([new VirtqBuffer(data.DeviceAddress, 1, false)], 2));
        Assert.Throws<ObjectDisposedException>(() => queue.TryTakeUsed(out _));
        Assert.Throws<ObjectDisposedException>(() => queue.KickPrepare());
    }

    [Fact]
    public void TheRingIsReturnedWhenTheIndirectTablesCannotBeAllocated()
    {
        using var memory = new HeapDmaAllocator();
        memory.FailAfter(1);

        var error = Assert.Throws<VirtioException>(() => new SplitVirtqueue(0, 256, memory, new VirtqueueOptions { IndirectDesc = true }));

        Assert.Equal(VirtioErrorReason.OutOfDmaMemory, error.Reason);
        Assert.Equal(1, memory.TotalAllocations);
        Assert.Equal(0, memory.OutstandingAllocations);
    }

    [Fact]
    public void ASizeOfZeroMeansTheQueueIsUnavailable()
    {
        using var memory = new HeapDmaAllocator();
        var error = Assert.Throws<VirtioException>(() => new SplitVirtqueue(0, 0, memory, new VirtqueueOptions()));
        Assert.Equal(VirtioErrorReason.QueueUnavailable, error.Reason);
        Assert.Equal(0, memory.TotalAllocations);
    }

    [Fact]
    public void OptionsRejectValuesTheSpecDoesNotAllow()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new VirtqueueOptions { LegacyQueueAlign = 1000 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new VirtqueueOptions { MaxIndirectChain = 1 });
        Assert.Equal(16, new VirtqueueOptions().MaxIndirectChain);
        Assert.Equal(4096, new VirtqueueOptions { LegacyQueueAlign = 4096 }.LegacyQueueAlign);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void TheSteadyStatePacketPathAllocatesNothing(bool eventIdx, bool indirect)
    {
        using var h = new SplitQueueHarness(16, eventIdx: eventIdx, indirect: indirect);
        VirtqBuffer[] chain = [h.Readable(new byte[12]), h.Readable(new byte[60]), h.Writable(72, out _)];
        long allocated = 0;
        int counted = 0;

        for (int i = 0; i < 20_000; i++)
        {
            // Only the driver's calls are measured: the software device allocates freely.
            int collections = GC.CollectionCount(0);
            long before = GC.GetAllocatedBytesForCurrentThread();
            bool added = h.Queue.TryAdd(chain, i);
            bool kick = h.Queue.KickPrepare();
            bool more = h.Queue.HasUsed;
            long delta = GC.GetAllocatedBytesForCurrentThread() - before;

            Assert.True(added);
            Assert.True(kick);
            Assert.False(more);
            h.Device.Loopback();

            before = GC.GetAllocatedBytesForCurrentThread();
            bool took = h.Queue.TryTakeUsed(out UsedBuffer used);
            h.Queue.DisableInterrupts();
            bool enabled = h.Queue.EnableInterrupts();
            delta += GC.GetAllocatedBytesForCurrentThread() - before;

            Assert.True(took);
            Assert.Equal(i, used.Token);
            Assert.True(enabled);

            // The first iterations run before tiered compilation settles; count the rest. An iteration during which a
            // collection ran (started by any test's thread: they run in parallel) is not counted either: the collection
            // retires this thread's allocation buffer, and the counter has been seen to jump by its unused remainder
            // (8,080 bytes once, in a full parallel run).
            if (i >= 1_000 && GC.CollectionCount(0) == collections)
            {
                allocated += delta;
                counted++;
            }
        }

        Assert.Equal(0, allocated);
        Assert.True(counted > 10_000, $"only {counted} iterations ran without a collection");
    }

    [Fact]
    public void GetStateDescribesTheQueue()
    {
        using var h = new SplitQueueHarness(8, eventIdx: true);
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.TryAdd(h.OneReadable(), 2);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        h.Queue.TryTakeUsed(out _);

        VirtqueueState state = h.Queue.GetState();

        Assert.Equal("split", state.Layout);
        Assert.Equal(0, state.QueueIndex);
        Assert.Equal(8, state.Size);
        Assert.Equal(2, state.AvailableIndex);
        Assert.Equal(2, state.DeviceUsedIndex);
        Assert.Equal(1, state.LastUsedIndex);
        Assert.Equal(1, state.Outstanding);
        Assert.Equal(7, state.FreeDescriptors);
        Assert.Equal((ushort)1, state.UsedEvent);
        Assert.Equal((ushort)2, state.AvailEvent);
        Assert.False(state.InterruptsSuppressed);
        Assert.Null(state.BrokenReason);
        Assert.Equal(h.Queue.DeviceArea, state.DeviceArea);
    }

    internal static int[] TakeAllTokens(SplitVirtqueue queue)
    {
        var tokens = new List<int>();
        while (queue.TryTakeUsed(out UsedBuffer used))
        {
            tokens.Add(used.Token);
        }

        return [.. tokens];
    }
}
