using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The library's device side of a packed ring: against the real driver queue for well-formed chains (lists, indirect
/// tables, wrap counters over many laps, in-order batches), and against rings written by hand for what a hostile driver
/// may write.
/// </summary>
public class DevicePackedRingTests
{
    public enum Hostile
    {
        ListRunsIntoAnUnavailableSlot,
        ListLongerThanTheRing,
        ListLongerThanTheCallerTakes,
        BufferIdStillHeld,
        IndirectWithNext,
        IndirectInsideAList,
        IndirectTableOfPartDescriptors,
        IndirectTableOutsideMemory,
        IndirectEntryWithFlagsOtherThanWrite,
        AddressOutsideMemory,
        LengthPastTheBuffer,
        ReadableAfterWritable,
    }

    public static TheoryData<Hostile> HostileInputs => new(Enum.GetValues<Hostile>());

    [Fact]
    public void AListComesOutWithTheBufferIdOfItsLastDescriptorAndGoesBackWithOneUsedDescriptor()
    {
        using var h = new PackedQueueHarness(8);
        var ring = new DevicePackedRing(h.Memory, 8, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: false);
        VirtqBuffer[] chain = [h.Readable("head"u8), h.Writable(16, out _), h.Writable(16, out _)];
        Assert.True(h.Queue.TryAdd(chain, token: 9));
        h.Queue.KickPrepare();

        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[8];
        Assert.True(ring.TryPop(buffers, out DeviceRingChain taken));
        Assert.Equal(3, taken.BufferCount);
        Assert.Equal(3, taken.Descriptors);
        Assert.Equal(3, ring.DescriptorsHeld(taken.Id));
        Assert.Equal(new DeviceBuffer(chain[0].Address, 4, false), buffers[0]);
        Assert.False(ring.TryPop(buffers, out _));

        ring.Complete(taken.Id, 20, written: true);
        Assert.Equal(3, ring.UsedSlot);
        Assert.Equal(0, ring.DescriptorsHeld(taken.Id));
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(9, 20), used);
    }

    [Fact]
    public void AnIndirectChainComesOutOfItsTableAsOneRingDescriptor()
    {
        using var h = new PackedQueueHarness(8, indirect: true);
        var ring = new DevicePackedRing(h.Memory, 8, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: false);
        VirtqBuffer[] chain = [h.Readable("a"u8), h.Readable("bc"u8), h.Writable(8, out _)];
        Assert.True(h.Queue.TryAdd(chain, token: 4));
        h.Queue.KickPrepare();

        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[8];
        Assert.True(ring.TryPop(buffers, out DeviceRingChain taken));
        Assert.True(taken.Indirect);
        Assert.Equal(3, taken.BufferCount);
        Assert.Equal(1, taken.Descriptors);
        ring.Complete(taken.Id, 0, written: true);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(4, used.Token);
    }

    [Fact]
    public void TheWrapCountersFlipLapAfterLapWithChainsThatStraddleTheEnd()
    {
        using var h = new PackedQueueHarness(5, eventIdx: true);
        var ring = new DevicePackedRing(h.Memory, 5, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: true);
        VirtqBuffer[] two = [h.Readable("x"u8), h.Writable(4, out _)];
        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[5];
        for (int round = 0; round < 1_000; round++)
        {
            Assert.True(h.Queue.TryAdd(two, round));
            h.Queue.KickPrepare();
            Assert.True(ring.TryPop(buffers, out DeviceRingChain taken));
            Assert.Equal(2, taken.BufferCount);
            Assert.Equal(PackedRing.EventOffWrap(ring.AvailSlot, ring.AvailWrap), ring.DeviceEventOffWrap);
            ring.Complete(taken.Id, 4, written: true);
            Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
            Assert.Equal(new UsedBuffer(round, 4), used);
        }

        // 2,000 descriptors in a ring of 5: 400 laps, an even number, so both counters are back at 1.
        Assert.Equal(0, ring.AvailSlot);
        Assert.True(ring.AvailWrap);
        Assert.True(ring.UsedWrap);
    }

    [Fact]
    public void AnInOrderBatchGoesBackAsOneUsedDescriptorSkippingEveryDescriptorOfTheBatch()
    {
        using var h = new PackedQueueHarness(8, inOrder: true);
        var ring = new DevicePackedRing(h.Memory, 8, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: false);
        Assert.True(h.Queue.TryAdd([h.Readable("a"u8), h.Readable("b"u8)], 1));
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 2));
        h.Queue.KickPrepare();
        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[8];
        Assert.True(ring.TryPop(buffers, out DeviceRingChain first));
        Assert.True(ring.TryPop(buffers, out DeviceRingChain second));

        ring.CompleteInOrderBatch([first.Id, second.Id], 0, written: false);
        Assert.Equal(3, ring.UsedSlot);
        Assert.Equal([1, 2], h.TakeAll().ConvertAll(used => used.Token));
    }

    [Fact]
    public void CompletingAChainTheDeviceDoesNotHoldIsTheCallersBug()
    {
        using var h = new PackedQueueHarness(4);
        var ring = new DevicePackedRing(h.Memory, 4, h.Queue.DescriptorArea, h.Queue.DriverArea, h.Queue.DeviceArea, eventIdx: false);
        Assert.Throws<InvalidOperationException>(() => ring.Complete(0, 0, written: false));
    }

    [Theory]
    [MemberData(nameof(HostileInputs))]
    public void WhatAHostileDriverWritesIsRefusedAndLeftUntaken(Hostile input)
    {
        using var memory = new HeapDmaAllocator();
        const int Size = 4;
        DmaRegion block = memory.Allocate(new PackedQueueLayout(Size).TotalLength, PackedRing.DescriptorRingAlignment);
        DmaRegion data = memory.Allocate(64, 8);
        DmaRegion table = memory.Allocate(4 * PackedRing.DescriptorSize, 16);
        ulong inside = data.DeviceAddress;
        ushort available = PackedRing.AvailableFlags(wrap: true);
        ushort next = (ushort)(available | PackedRing.DescFlagNext);
        int span = 8;
        void Ring(int slot, ulong address, uint length, ushort id, ushort flags) => Write(block, slot, address, length, id, flags);
        switch (input)
        {
            case Hostile.ListRunsIntoAnUnavailableSlot:
                Ring(0, inside, 8, 0, next);
                Ring(1, inside, 8, 0, PackedRing.UsedFlags(wrap: true));
                break;
            case Hostile.ListLongerThanTheRing:
                for (int slot = 0; slot < Size; slot++)
                {
                    Ring(slot, inside, 8, 0, next);
                }

                break;
            case Hostile.ListLongerThanTheCallerTakes:
                Ring(0, inside, 8, 0, next);
                Ring(1, inside, 8, 0, next);
                Ring(2, inside, 8, 0, available);
                span = 2;
                break;
            case Hostile.BufferIdStillHeld:
                Ring(0, inside, 8, 1, available);
                Ring(1, inside, 8, 1, available);
                break;
            case Hostile.IndirectWithNext:
                Ring(0, table.DeviceAddress, 32, 0, (ushort)(next | PackedRing.DescFlagIndirect));
                break;
            case Hostile.IndirectInsideAList:
                Ring(0, inside, 8, 0, next);
                Ring(1, table.DeviceAddress, 32, 0, (ushort)(available | PackedRing.DescFlagIndirect));
                break;
            case Hostile.IndirectTableOfPartDescriptors:
                Ring(0, table.DeviceAddress, 20, 0, (ushort)(available | PackedRing.DescFlagIndirect));
                break;
            case Hostile.IndirectTableOutsideMemory:
                Ring(0, 0x1000, 32, 0, (ushort)(available | PackedRing.DescFlagIndirect));
                break;
            case Hostile.IndirectEntryWithFlagsOtherThanWrite:
                Write(table, 0, inside, 8, 0, PackedRing.DescFlagNext);
                Ring(0, table.DeviceAddress, 16, 0, (ushort)(available | PackedRing.DescFlagIndirect));
                break;
            case Hostile.AddressOutsideMemory:
                Ring(0, 0xDEAD_BEEF, 8, 0, available);
                break;
            case Hostile.LengthPastTheBuffer:
                Ring(0, inside, 65, 0, available);
                break;
            case Hostile.ReadableAfterWritable:
                Ring(0, inside, 8, 0, (ushort)(next | PackedRing.DescFlagWrite));
                Ring(1, inside, 8, 0, available);
                break;
        }

        var layout = new PackedQueueLayout(Size);
        ulong ringAddress = block.DeviceAddress;
        var ring = new DevicePackedRing(
            memory, Size, ringAddress, ringAddress + (ulong)layout.DriverEventSuppressionOffset, ringAddress + (ulong)layout.DeviceEventSuppressionOffset, eventIdx: false);
        DeviceBuffer[] buffers = new DeviceBuffer[span];
        if (input == Hostile.BufferIdStillHeld)
        {
            Assert.True(ring.TryPop(buffers, out _));
        }

        int slotBefore = ring.AvailSlot;
        var error = Assert.Throws<VirtioException>(() => ring.TryPop(buffers, out _));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        Assert.Equal(slotBefore, ring.AvailSlot);
        Assert.True(ring.AvailWrap);
        Assert.True(memory.AllGuardsIntact());
        memory.Free(table);
        memory.Free(data);
        memory.Free(block);
    }

    private static void Write(DmaRegion table, int slot, ulong address, uint length, ushort id, ushort flags)
    {
        nint descriptor = table.Pointer + (slot * PackedRing.DescriptorSize);
        SharedMemory.WriteUInt64(descriptor + PackedRing.DescriptorAddrOffset, address);
        SharedMemory.WriteUInt32(descriptor + PackedRing.DescriptorLenOffset, length);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorIdOffset, id);
        SharedMemory.WriteUInt16(descriptor + PackedRing.DescriptorFlagsOffset, flags);
    }
}
