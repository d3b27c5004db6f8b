using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The library's device side of a split ring: against the real driver queue for well-formed chains (direct, indirect,
/// 16-bit index wrap), and against rings written by hand for what a hostile driver may write.
/// </summary>
public class DeviceSplitRingTests
{
    public enum Hostile
    {
        HeadOutOfRange,
        NextOutOfRange,
        ChainLoops,
        ChainLongerThanTheCallerTakes,
        IndirectWithNext,
        IndirectTableOfZeroBytes,
        IndirectTableOfPartDescriptors,
        IndirectTableLargerThanTheQueue,
        IndirectTableOutsideMemory,
        IndirectInsideIndirect,
        IndirectChainLoops,
        IndirectInTheMiddleOfAChain,
        AddressOutsideMemory,
        LengthPastTheBuffer,
        ReadableAfterWritable,
        AvailableIndexJumpsPastTheRing,
    }

    [Fact]
    public void ChainsOfReadableAndWritableBuffersComeOutInOrderAndGoBackWithTheirLength()
    {
        using var h = new SplitQueueHarness(8);
        var ring = new DeviceSplitRing(h.Memory, 8, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: false);
        VirtqBuffer[] chain = [h.Readable("head"u8), h.Readable("body"u8), h.Writable(32, out _)];
        Assert.True(h.Queue.TryAdd(chain, token: 7));
        h.Queue.KickPrepare();

        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[8];
        Assert.True(ring.TryPop(buffers, out DeviceRingChain taken));
        Assert.Equal(new DeviceRingChain(0, 3, 3, Indirect: false), taken);
        Assert.Equal(new DeviceBuffer(chain[1].Address, 4, false), buffers[1]);
        Assert.True(buffers[2].Writable);
        Assert.False(ring.TryPop(buffers, out _));

        ring.PushUsed(taken.Id, 12);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(7, 12), used);
    }

    [Fact]
    public void AnIndirectChainComesOutOfItsTableAsOneRingDescriptor()
    {
        using var h = new SplitQueueHarness(8, indirect: true);
        var ring = new DeviceSplitRing(h.Memory, 8, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: false);
        VirtqBuffer[] chain = [h.Readable("a"u8), h.Readable("bc"u8), h.Writable(8, out _), h.Writable(8, out _)];
        Assert.True(h.Queue.TryAdd(chain, token: 3));
        h.Queue.KickPrepare();

        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[8];
        Assert.True(ring.TryPop(buffers, out DeviceRingChain taken));
        Assert.True(taken.Indirect);
        Assert.Equal(4, taken.BufferCount);
        Assert.Equal(1, taken.Descriptors);
        Assert.Equal(2u, buffers[1].Length);
        ring.PushUsed(taken.Id, 0);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(3, used.Token);
    }

    [Fact]
    public void TheIndexesWrapPastSixteenBitsWithEveryChainDeliveredOnce()
    {
        using var h = new SplitQueueHarness(4, eventIdx: true);
        var ring = new DeviceSplitRing(h.Memory, 4, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: true);
        VirtqBuffer[] one = h.OneReadable();
        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[4];
        for (int round = 0; round < 70_000; round++)
        {
            Assert.True(h.Queue.TryAdd(one, round));
            h.Queue.KickPrepare();
            Assert.True(ring.TryPop(buffers, out DeviceRingChain taken));
            Assert.Equal((ushort)(round + 1), ring.AvailEvent);
            ring.PushUsed(taken.Id, 0);
            Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
            Assert.Equal(round, used.Token);
        }

        Assert.Equal(70_000 % 65_536, ring.UsedIdx);
        Assert.Equal(70_000 % 65_536, ring.LastAvailIdx);
    }

    [Fact]
    public void UsedEventDecidesInterruptsWithEventIdx()
    {
        using var h = new SplitQueueHarness(8, eventIdx: true);
        var ring = new DeviceSplitRing(h.Memory, 8, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: true);
        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[8];
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.TryAdd(h.OneReadable(), 2);
        h.Queue.KickPrepare();
        h.Queue.DisableInterrupts();
        Assert.True(ring.TryPop(buffers, out DeviceRingChain first));
        ring.PushUsed(first.Id, 0);
        h.Queue.EnableInterrupts();

        // The driver asked to hear about the entry after the one it has; the next one crosses it.
        Assert.True(ring.TryPop(buffers, out DeviceRingChain second));
        ring.PushUsed(second.Id, 0);
        Assert.True(ring.TakeInterruptDecision());
        Assert.False(ring.TakeInterruptDecision());
    }

    public static TheoryData<Hostile> HostileInputs => new(Enum.GetValues<Hostile>());

    [Theory]
    [MemberData(nameof(HostileInputs))]
    public void WhatAHostileDriverWritesIsRefusedAndLeftUntaken(Hostile input)
    {
        using var memory = new HeapDmaAllocator();
        using var raw = new RawSplitRing(memory, 4);
        DmaRegion data = memory.Allocate(64, 8);
        DmaRegion table = memory.Allocate(4 * SplitRing.DescriptorSize, 16);
        ulong inside = data.DeviceAddress;
        int span = 8;
        switch (input)
        {
            case Hostile.HeadOutOfRange:
                raw.Publish(4);
                break;
            case Hostile.NextOutOfRange:
                raw.Descriptor(0, inside, 8, SplitRing.DescFlagNext, next: 9);
                raw.Publish(0);
                break;
            case Hostile.ChainLoops:
                raw.Descriptor(0, inside, 8, SplitRing.DescFlagNext, next: 1);
                raw.Descriptor(1, inside, 8, SplitRing.DescFlagNext, next: 0);
                raw.Publish(0);
                break;
            case Hostile.ChainLongerThanTheCallerTakes:
                raw.Descriptor(0, inside, 8, SplitRing.DescFlagNext, next: 1);
                raw.Descriptor(1, inside, 8, SplitRing.DescFlagNext, next: 2);
                raw.Descriptor(2, inside, 8, 0, next: 0);
                raw.Publish(0);
                span = 2;
                break;
            case Hostile.IndirectWithNext:
                raw.Descriptor(0, table.DeviceAddress, 32, SplitRing.DescFlagIndirect | SplitRing.DescFlagNext, next: 1);
                raw.Publish(0);
                break;
            case Hostile.IndirectTableOfZeroBytes:
                raw.Descriptor(0, table.DeviceAddress, 0, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.IndirectTableOfPartDescriptors:
                raw.Descriptor(0, table.DeviceAddress, 24, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.IndirectTableLargerThanTheQueue:
                raw.Descriptor(0, table.DeviceAddress, 5 * SplitRing.DescriptorSize, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.IndirectTableOutsideMemory:
                raw.Descriptor(0, 0x1000, 32, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.IndirectInsideIndirect:
                RawSplitRing.Write(table, 0, table.DeviceAddress, 32, SplitRing.DescFlagIndirect, 0);
                raw.Descriptor(0, table.DeviceAddress, 32, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.IndirectChainLoops:
                RawSplitRing.Write(table, 0, inside, 8, SplitRing.DescFlagNext, 1);
                RawSplitRing.Write(table, 1, inside, 8, SplitRing.DescFlagNext, 0);
                raw.Descriptor(0, table.DeviceAddress, 32, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.IndirectInTheMiddleOfAChain:
                raw.Descriptor(0, inside, 8, SplitRing.DescFlagNext, next: 1);
                raw.Descriptor(1, table.DeviceAddress, 32, SplitRing.DescFlagIndirect, next: 0);
                raw.Publish(0);
                break;
            case Hostile.AddressOutsideMemory:
                raw.Descriptor(0, 0xDEAD_BEEF, 8, 0, next: 0);
                raw.Publish(0);
                break;
            case Hostile.LengthPastTheBuffer:
                raw.Descriptor(0, inside, uint.MaxValue, SplitRing.DescFlagWrite, next: 0);
                raw.Publish(0);
                break;
            case Hostile.ReadableAfterWritable:
                raw.Descriptor(0, inside, 8, SplitRing.DescFlagWrite | SplitRing.DescFlagNext, next: 1);
                raw.Descriptor(1, inside, 8, 0, next: 0);
                raw.Publish(0);
                break;
            case Hostile.AvailableIndexJumpsPastTheRing:
                raw.Descriptor(0, inside, 8, 0, next: 0);
                raw.SetAvailIdx(5);
                break;
        }

        var ring = new DeviceSplitRing(memory, 4, raw.DescriptorArea, raw.DriverArea, raw.DeviceArea, eventIdx: false);
        var error = Assert.Throws<VirtioException>(() => ring.TryPop(new DeviceBuffer[span], out _));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        Assert.Equal(0, ring.LastAvailIdx);
        Assert.Equal(0, ring.UsedIdx);
        Assert.True(memory.AllGuardsIntact());
        memory.Free(data);
        memory.Free(table);
    }

    [Fact]
    public void ARingOutsideDeviceMemoryIsRefusedWhenAttaching()
    {
        using var memory = new HeapDmaAllocator();
        var error = Assert.Throws<VirtioException>(() => new DeviceSplitRing(memory, 4, 0x1000, 0x2000, 0x3000, eventIdx: false));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
    }
}
