using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class PackedVirtqueueTests
{
    [Fact]
    public void ReadableChainReachesTheDeviceWithItsContents()
    {
        using var h = new PackedQueueHarness(8);
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
        using var h = new PackedQueueHarness(8, indirect: indirect);
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
    public void TheHeadIsMadeAvailableOnlyByKickPrepareAfterTheRestOfTheList()
    {
        using var h = new PackedQueueHarness(8);
        VirtqBuffer[] chain = [h.Readable("ab"u8), h.Writable(4, out _)];
        Assert.True(h.Queue.TryAdd(chain, 1));

        // The second descriptor is complete, the head still carries the zeroed flags: the device sees nothing (§2.8.6).
        Assert.Equal(0, h.Device.RawFlags(0));
        Assert.Equal(PackedRing.DescFlagAvail | PackedRing.DescFlagWrite, h.Device.RawFlags(1));
        Assert.False(h.Device.HasAvailable);
        Assert.False(h.Device.TryPop(out _));

        Assert.True(h.Queue.KickPrepare());
        Assert.Equal(PackedRing.DescFlagAvail | PackedRing.DescFlagNext, h.Device.RawFlags(0));
        Assert.True(h.Device.HasAvailable);

        // The Buffer ID is in the last descriptor of the list (§2.8.6).
        Assert.Equal(h.Device.RawId(0), h.Device.RawId(1));
        Assert.True(h.Device.TryPop(out DeviceChain? popped));
        Assert.Equal(2, popped.Buffers.Count);
    }

    [Fact]
    public void KickPrepareWithNothingAddedAsksForNoNotification()
    {
        using var h = new PackedQueueHarness(8);
        Assert.False(h.Queue.KickPrepare());
        h.Queue.TryAdd(h.OneReadable(), 1);
        Assert.True(h.Queue.KickPrepare());
        Assert.False(h.Queue.KickPrepare());
    }

    [Theory]
    [InlineData(8)]
    [InlineData(5)]
    public void AFullRingRefusesChainsUntilOneComesBack(int size)
    {
        using var h = new PackedQueueHarness(size);
        for (int i = 0; i < size; i++)
        {
            Assert.True(h.Queue.TryAdd(h.OneReadable(), i));
        }

        VirtqBuffer[] extra = h.OneReadable();
        Assert.False(h.Queue.TryAdd(extra, 99));
        Assert.Equal(0, h.Queue.FreeDescriptors);
        Assert.Equal(size, h.Queue.Outstanding);

        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? chain));
        h.Device.Complete(chain, 0);
        Assert.False(h.Queue.TryAdd(extra, 99));

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(0, used.Token);
        Assert.True(h.Queue.TryAdd(extra, 99));
        Assert.False(h.Queue.TryAdd(extra, 100));

        // The new chain sits in slot 0 of the second lap, under the flipped wrap counter.
        Assert.True(h.Queue.KickPrepare());
        Assert.Equal(PackedRing.DescFlagUsed, h.Device.RawFlags(0));
    }

    [Fact]
    public void DirectChainsCostOneDescriptorPerBuffer()
    {
        using var h = new PackedQueueHarness(8);
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

        h.Device.Complete(chains[1], 30);
        h.Device.Complete(chains[2], 1);
        h.Device.Complete(chains[0], 0);
        Assert.Equal([2, 4, 1], h.TakeAllTokens());
        Assert.Equal(8, h.Queue.FreeDescriptors);

        // The next lists run across the end of the ring and still arrive whole.
        Assert.True(h.Queue.TryAdd(three, 5));
        Assert.True(h.Queue.TryAdd(three, 6));
        h.Queue.KickPrepare();
        Assert.Equal([3, 3], h.Device.PopAll().ConvertAll(c => c.Buffers.Count));
    }

    [Fact]
    public void OutOfOrderCompletionIsSkippedByTheLengthOfTheReturnedChain()
    {
        using var h = new PackedQueueHarness(8);
        VirtqBuffer[] three = [h.Readable("abc"u8), h.Writable(2, out _), h.Writable(2, out _)];
        VirtqBuffer[] two = [h.Readable("de"u8), h.Writable(2, out _)];

        // A in slots 0-2, B in slot 3, C in slots 4-5.
        h.Queue.TryAdd(three, 100);
        h.Queue.TryAdd(h.OneReadable(), 200);
        h.Queue.TryAdd(two, 300);
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();

        // The device finishes C, then A, then B: each used descriptor goes where the device is, then it skips by
        // that chain's length (C at 0, A at 2, B at 5).
        h.Device.Complete(chains[2], 2);
        h.Device.Complete(chains[0], 4);
        h.Device.Complete(chains[1], 0);
        Assert.Equal(chains[2].Head, h.Device.RawId(0));
        Assert.Equal(chains[0].Head, h.Device.RawId(2));
        Assert.Equal(chains[1].Head, h.Device.RawId(5));
        Assert.Equal(6, h.Device.UsedSlot);

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer c));
        Assert.Equal(new UsedBuffer(300, 2), c);
        Assert.Equal(2, h.Queue.GetState().LastUsedIndex);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer a));
        Assert.Equal(new UsedBuffer(100, 4), a);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer b));
        Assert.Equal(new UsedBuffer(200, 0), b);
        Assert.False(h.Queue.TryTakeUsed(out _));
        Assert.Equal(6, h.Queue.GetState().LastUsedIndex);
        Assert.Equal(8, h.Queue.FreeDescriptors);
    }

    [Fact]
    public void IndirectChainsCostOneRingDescriptor()
    {
        using var h = new PackedQueueHarness(4, indirect: true);
        Assert.True(h.Queue.UsesIndirectDescriptors);
        VirtqBuffer[] chain = [h.Readable("abc"u8), h.Readable("def"u8), h.Writable(8, out _)];

        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAdd(chain, i));
        }

        Assert.Equal(0, h.Queue.FreeDescriptors);
        Assert.False(h.Queue.TryAdd(chain, 4));

        h.Queue.KickPrepare();
        Assert.Equal(PackedRing.DescFlagAvail | PackedRing.DescFlagIndirect, h.Device.RawFlags(0));
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

        Assert.Equal([0, 1, 2, 3], h.TakeAllTokens());
        Assert.Equal(4, h.Queue.FreeDescriptors);
    }

    [Fact]
    public void SingleBufferChainsDoNotUseIndirectTables()
    {
        using var h = new PackedQueueHarness(4, indirect: true);
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? chain));
        Assert.False(chain.Indirect);
    }

    [Fact]
    public void ChainsLongerThanMaxIndirectChainFallBackToDirectDescriptors()
    {
        using var h = new PackedQueueHarness(8, indirect: true, maxIndirectChain: 2);
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
        using var h = new PackedQueueHarness(4);
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
    [InlineData(8, false, false)]
    [InlineData(8, true, false)]
    [InlineData(7, false, true)]
    [InlineData(7, true, true)]
    [InlineData(5, true, false)]
    [InlineData(3, false, false)]
    [InlineData(1, false, false)]
    [InlineData(1, true, false)]
    public void TheRingWrapsManyTimesWithEveryChainIntact(int size, bool eventIdx, bool indirect)
    {
        using var h = new PackedQueueHarness(size, eventIdx: eventIdx, indirect: indirect);
        Span<DmaRegion> inputs = [h.Buffer(4), h.Buffer(4), h.Buffer(4)];
        Span<DmaRegion> outputs = [h.Buffer(4), h.Buffer(4), h.Buffer(4)];
        int longest = Math.Min(3, size);
        long descriptors = 0;
        int token = 0;

        for (int cycle = 0; descriptors < 40L * size || cycle < 100; cycle++)
        {
            // One to three chains of one to three buffers per batch, so that lists start and end at every slot and
            // run across the end of the ring.
            int added = 0;
            for (int i = 0; i < 3; i++)
            {
                int length = ((cycle + i) % longest) + 1;
                VirtqBuffer[] chain = Chain(length, inputs[i], outputs[i], token + i);
                int free = h.Queue.FreeDescriptors;
                if (!h.Queue.TryAdd(chain, token + i))
                {
                    Assert.True(free < (indirect && length > 1 ? 1 : length));
                    break;
                }

                descriptors += free - h.Queue.FreeDescriptors;
                added++;
            }

            Assert.True(added > 0);

            // The device asks for every notification and the driver for every interrupt: both must keep saying yes
            // across every wrap.
            Assert.True(h.Queue.KickPrepare());
            Assert.Equal(added, h.Device.Loopback());
            Assert.True(h.Device.TakeInterruptDecision());

            for (int i = 0; i < added; i++)
            {
                Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
                Assert.Equal(token + i, used.Token);
                int length = ((cycle + i) % longest) + 1;
                Assert.Equal(length == 1 ? 0 : 4, used.Length);
                if (length > 1)
                {
                    Assert.Equal(token + i, BinaryPrimitives.ReadInt32LittleEndian(outputs[i].Span));
                }
            }

            Assert.False(h.Queue.TryTakeUsed(out _));
            token += added;
        }

        // Each lap flips both wrap counters; driver and device agree on where they are.
        long laps = descriptors / size;
        Assert.True(laps >= 40);
        VirtqueueState state = h.Queue.GetState();
        Assert.Equal((int)(descriptors % size), state.AvailableIndex);
        Assert.Equal((int)(descriptors % size), state.LastUsedIndex);
        Assert.Equal(laps % 2 == 0, state.AvailWrapCounter);
        Assert.Equal(laps % 2 == 0, state.UsedWrapCounter);
        Assert.Equal(h.Device.UsedSlot, state.LastUsedIndex);
        Assert.Equal(h.Device.UsedWrap, state.UsedWrapCounter);
        Assert.Equal(h.Device.AvailSlot, state.AvailableIndex);
        Assert.Equal(size, h.Queue.FreeDescriptors);
        Assert.True(h.Memory.AllGuardsIntact());
    }

    [Theory]
    [InlineData(16, false, false, 1)]
    [InlineData(16, true, false, 2)]
    [InlineData(11, false, true, 3)]
    [InlineData(11, true, true, 4)]
    public void OutOfOrderTrafficAcrossManyWrapsReturnsEveryChainOnce(int size, bool eventIdx, bool indirect, int seed)
    {
        using var h = new PackedQueueHarness(size, eventIdx: eventIdx, indirect: indirect);
        var random = new Random(seed);

        // One set of buffers per possible chain in flight; a chain holds at least one descriptor.
        var inputs = new DmaRegion[size];
        var outputs = new DmaRegion[size];
        var freeSets = new Stack<int>();
        for (int i = 0; i < size; i++)
        {
            inputs[i] = h.Buffer(8);
            outputs[i] = h.Buffer(8);
            freeSets.Push(i);
        }

        var setOfToken = new Dictionary<int, (int Set, int Length)>();
        var held = new List<DeviceChain>();
        long usedDescriptors = 0;
        int nextToken = 0;
        int returned = 0;

        while (usedDescriptors < 20L * size || setOfToken.Count > 0)
        {
            bool stopAdding = usedDescriptors >= 20L * size;
            for (int n = random.Next(0, 4); n > 0 && !stopAdding && freeSets.Count > 0; n--)
            {
                int set = freeSets.Peek();
                int length = random.Next(1, 5);
                BinaryPrimitives.WriteInt64LittleEndian(inputs[set].Span, nextToken);
                VirtqBuffer[] chain = length switch
                {
                    1 => [new VirtqBuffer(outputs[set].DeviceAddress, 8, true)],
                    2 => [new VirtqBuffer(inputs[set].DeviceAddress, 8, false), new VirtqBuffer(outputs[set].DeviceAddress, 8, true)],
                    3 => [new VirtqBuffer(inputs[set].DeviceAddress, 4, false), new VirtqBuffer(inputs[set].DeviceAddress + 4, 4, false), new VirtqBuffer(outputs[set].DeviceAddress, 8, true)],
                    _ => [new VirtqBuffer(inputs[set].DeviceAddress, 8, false), new VirtqBuffer(outputs[set].DeviceAddress, 3, true), new VirtqBuffer(outputs[set].DeviceAddress + 3, 2, true), new VirtqBuffer(outputs[set].DeviceAddress + 5, 3, true)],
                };

                if (!h.Queue.TryAdd(chain, nextToken))
                {
                    break;
                }

                freeSets.Pop();
                setOfToken.Add(nextToken, (set, length));
                nextToken++;
            }

            h.Queue.KickPrepare();

            // The device pops everything, then finishes a random subset in a random order.
            held.AddRange(h.Device.PopAll());
            for (int n = random.Next(0, held.Count + 1); n > 0; n--)
            {
                int pick = random.Next(held.Count);
                DeviceChain chain = held[pick];
                held.RemoveAt(pick);
                byte[] readable = chain.ReadReadable();
                int written = chain.WriteWritable(readable.Length == 0 ? BitConverter.GetBytes(-1L) : readable);
                usedDescriptors += chain.Indirect ? 1 : chain.Buffers.Count;
                h.Device.Complete(chain, (uint)written);
            }

            while (h.Queue.TryTakeUsed(out UsedBuffer used))
            {
                Assert.True(setOfToken.Remove(used.Token, out (int Set, int Length) entry));
                int set = entry.Set;
                Assert.Equal(8, used.Length);

                // A chain without readable buffers got the device's marker; any other got its own input back.
                Assert.Equal(entry.Length == 1 ? -1L : used.Token, BinaryPrimitives.ReadInt64LittleEndian(outputs[set].Span));
                outputs[set].Span.Clear();
                freeSets.Push(set);
                returned++;
            }

            Assert.Equal(setOfToken.Count, h.Queue.Outstanding);
        }

        Assert.Equal(nextToken, returned);
        Assert.Equal(size, h.Queue.FreeDescriptors);
        Assert.False(h.Queue.HasUsed);
        Assert.True(h.Memory.AllGuardsIntact());
    }

    [Fact]
    public void AUsedLengthWithoutTheWriteFlagIsStillReadAndChecked()
    {
        // QEMU 7.2 writes used descriptors without VIRTQ_DESC_F_WRITE but with the real length, so the driver reads len
        // whatever the flag says (as Linux does); an impossible one still breaks the queue.
        using var h = new PackedQueueHarness(8);
        h.Queue.TryAdd([h.Writable(8, out _)], 1);
        h.Queue.TryAdd([h.Writable(8, out _)], 2);
        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? first));
        Assert.True(h.Device.TryPop(out DeviceChain? second));

        h.Device.PushUsed(first.Head, 6, skip: 1, written: false);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(1, 6), used);

        h.Device.PushUsed(second.Head, 5000, skip: 1, written: false);
        var error = Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
    }

    [Theory]
    [InlineData(0, VirtioErrorReason.QueueUnavailable)]
    [InlineData(-1, VirtioErrorReason.InvalidConfiguration)]
    [InlineData(32769, VirtioErrorReason.InvalidConfiguration)]
    public void SizesOutsideOneTo32768AreRefused(int size, VirtioErrorReason reason)
    {
        using var memory = new HeapDmaAllocator();
        var error = Assert.Throws<VirtioException>(() => new PackedVirtqueue(0, size, memory, new VirtqueueOptions()));
        Assert.Equal(reason, error.Reason);
        Assert.Equal(0, memory.TotalAllocations);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(32768)]
    public void AnySizeFromOneTo32768IsAccepted(int size)
    {
        using var memory = new HeapDmaAllocator();
        using var queue = new PackedVirtqueue(0, size, memory, new VirtqueueOptions());
        Assert.Equal(size, queue.Size);
        Assert.Equal(size, queue.FreeDescriptors);
        memory.Translate(queue.DescriptorArea, 16L * size);
    }

    [Fact]
    public void AreasAreDeviceAddressesWithTheAlignmentTheSpecRequires()
    {
        using var h = new PackedQueueHarness(255);
        PackedVirtqueue q = h.Queue;

        Assert.True(q.DescriptorArea >= HeapDmaAllocator.DefaultDeviceBase);
        Assert.Equal(0UL, q.DescriptorArea % 16);
        Assert.Equal(0UL, q.DriverArea % 4);
        Assert.Equal(0UL, q.DeviceArea % 4);

        // The three parts do not overlap.
        Assert.True(q.DriverArea >= q.DescriptorArea + (16 * 255));
        Assert.True(q.DeviceArea >= q.DriverArea + 4 || q.DriverArea >= q.DeviceArea + 4);
        Assert.Equal(q.DriverArea - q.DescriptorArea, (ulong)q.Layout.DriverEventSuppressionOffset);
        Assert.Equal(q.DeviceArea - q.DescriptorArea, (ulong)q.Layout.DeviceEventSuppressionOffset);
    }

    [Fact]
    public void DetachAllReturnsEveryOutstandingToken()
    {
        using var h = new PackedQueueHarness(8, indirect: true);
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
        VirtqueueState state = h.Queue.GetState();
        Assert.Equal(0, state.AvailableIndex);
        Assert.Equal(true, state.AvailWrapCounter);
        Assert.Equal(true, state.UsedWrapCounter);

        // The queue is as new, as after a device reset: a fresh device sees an empty ring and it works again.
        var device = new SoftwarePackedDevice(h.Memory, h.Queue, eventIdx: false);
        Assert.False(device.HasAvailable);
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
        var queue = new PackedVirtqueue(3, 64, memory, new VirtqueueOptions { IndirectDesc = indirect, EventIdx = true });
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
        Assert.Throws<ObjectDisposedException>(() => queue.GetState());
    }

    [Fact]
    public void TheRingIsReturnedWhenTheIndirectTablesCannotBeAllocated()
    {
        using var memory = new HeapDmaAllocator();
        memory.FailAfter(1);

        var error = Assert.Throws<VirtioException>(() => new PackedVirtqueue(0, 256, memory, new VirtqueueOptions { IndirectDesc = true }));

        Assert.Equal(VirtioErrorReason.OutOfDmaMemory, error.Reason);
        Assert.Equal(1, memory.TotalAllocations);
        Assert.Equal(0, memory.OutstandingAllocations);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void TheSteadyStatePacketPathAllocatesNothing(bool eventIdx, bool indirect)
    {
        using var h = new PackedQueueHarness(16, eventIdx: eventIdx, indirect: indirect);
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
        using var h = new PackedQueueHarness(8, eventIdx: true);
        VirtqBuffer[] pair = [h.Readable("ab"u8), h.Writable(2, out _)];
        h.Queue.TryAdd(pair, 1);
        h.Queue.TryAdd(h.OneReadable(), 2);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        h.Queue.TryTakeUsed(out _);

        VirtqueueState state = h.Queue.GetState();

        Assert.Equal("packed", state.Layout);
        Assert.Equal(0, state.QueueIndex);
        Assert.Equal(8, state.Size);
        Assert.Equal(3, state.AvailableIndex);
        Assert.Equal(2, state.LastUsedIndex);
        Assert.Equal(1, state.Outstanding);
        Assert.Equal(7, state.FreeDescriptors);
        Assert.Equal(PackedRing.EventOffWrap(2, wrap: true), state.UsedEvent);
        Assert.Equal(PackedRing.EventOffWrap(3, wrap: true), state.AvailEvent);
        Assert.Equal(true, state.AvailWrapCounter);
        Assert.Equal(true, state.UsedWrapCounter);
        Assert.Equal(PackedRing.RingEventFlagsDesc, state.DriverEventFlags);
        Assert.Equal(PackedRing.RingEventFlagsDesc, state.DeviceEventFlags);
        Assert.False(state.InterruptsSuppressed);
        Assert.False(state.NotificationsSuppressed);
        Assert.Null(state.BrokenReason);
        Assert.Equal(h.Queue.DescriptorArea, state.DescriptorArea);
        Assert.Equal(h.Queue.DriverArea, state.DriverArea);
        Assert.Equal(h.Queue.DeviceArea, state.DeviceArea);
    }

    // A chain of 1 to 3 buffers: [input] alone (nothing to write back), [input, output], or [input split in two, output].
    private static VirtqBuffer[] Chain(int length, DmaRegion input, DmaRegion output, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(input.Span, value);
        output.Span.Clear();
        return length switch
        {
            1 => [new VirtqBuffer(input.DeviceAddress, 4, false)],
            2 => [new VirtqBuffer(input.DeviceAddress, 4, false), new VirtqBuffer(output.DeviceAddress, 4, true)],
            _ => [new VirtqBuffer(input.DeviceAddress, 2, false), new VirtqBuffer(input.DeviceAddress + 2, 2, false), new VirtqBuffer(output.DeviceAddress, 4, true)],
        };
    }
}
