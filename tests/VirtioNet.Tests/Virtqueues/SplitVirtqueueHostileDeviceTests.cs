using VirtioNet.Core;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class SplitVirtqueueHostileDeviceTests
{
    public enum Lie
    {
        IdOutOfRange,
        IdFarOutOfRange,
        IdInsideAChain,
        IdCompletedTwice,
        LengthPastWritableBuffers,
        UsedIdxPastTheRing,
        UsedIdxPastTheOutstandingChains,
        UsedIdxHalfTheIndexSpaceAway,
    }

    [Theory]
    [InlineData(Lie.IdOutOfRange, false)]
    [InlineData(Lie.IdFarOutOfRange, true)]
    [InlineData(Lie.IdInsideAChain, false)]
    [InlineData(Lie.IdCompletedTwice, true)]
    [InlineData(Lie.LengthPastWritableBuffers, false)]
    [InlineData(Lie.LengthPastWritableBuffers, true)]
    [InlineData(Lie.UsedIdxPastTheRing, false)]
    [InlineData(Lie.UsedIdxPastTheOutstandingChains, true)]
    [InlineData(Lie.UsedIdxHalfTheIndexSpaceAway, false)]
    public void ALyingDeviceBreaksTheQueueWithoutTheDriverTouchingMemory(Lie lie, bool eventIdx)
    {
        using var h = new SplitQueueHarness(8, eventIdx: eventIdx);

        // Chain A: 3 direct descriptors (0, 1, 2), 100 writable bytes. Chain B: one readable descriptor (3).
        VirtqBuffer[] a = [h.Readable("hdr"u8), h.Writable(60, out _), h.Writable(40, out _)];
        Assert.True(h.Queue.TryAdd(a, 100));
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 200));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        Assert.Equal([0, 3], chains.ConvertAll(c => (int)c.Head));

        switch (lie)
        {
            case Lie.IdOutOfRange:
                h.Device.PushUsed(8, 0);
                break;
            case Lie.IdFarOutOfRange:
                h.Device.PushUsed(uint.MaxValue, 0);
                break;
            case Lie.IdInsideAChain:
                h.Device.PushUsed(1, 0);
                break;
            case Lie.IdCompletedTwice:
                h.Device.Complete(chains[1], 0);
                Assert.True(h.Queue.TryTakeUsed(out UsedBuffer first));
                Assert.Equal(200, first.Token);
                h.Device.Complete(chains[1], 0);
                break;
            case Lie.LengthPastWritableBuffers:
                // Exactly the capacity is fine; one more byte is not.
                h.Device.Complete(chains[0], 100);
                Assert.True(h.Queue.TryTakeUsed(out UsedBuffer full));
                Assert.Equal(new UsedBuffer(100, 100), full);
                Assert.True(h.Queue.TryAdd(a, 101));
                h.Queue.KickPrepare();
                h.Device.Complete(h.Device.PopAll()[0], 101);
                break;
            case Lie.UsedIdxPastTheRing:
                h.Device.SetUsedIdx(9);
                break;
            case Lie.UsedIdxPastTheOutstandingChains:
                h.Device.Complete(chains[0], 0);
                h.Device.Complete(chains[1], 0);
                h.Device.SetUsedIdx(3);
                break;
            case Lie.UsedIdxHalfTheIndexSpaceAway:
                h.Device.SetUsedIdx(0x8000);
                break;
        }

        int outstanding = h.Queue.Outstanding;
        byte[] before = h.Memory.SnapshotAll();

        var error = Assert.Throws<VirtioException>(() => DrainUsed(h.Queue));

        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        Assert.True(h.Queue.IsBroken);
        Assert.False(string.IsNullOrEmpty(h.Queue.BrokenReason));
        Assert.Contains(h.Queue.BrokenReason!, error.Message, StringComparison.Ordinal);
        Assert.Equal(h.Queue.BrokenReason, h.Queue.GetState().BrokenReason);

        // The driver wrote nothing once it saw the lie: every byte of DMA memory, guards included, is unchanged.
        Assert.Equal(before, h.Memory.SnapshotAll());
        Assert.True(h.Memory.AllGuardsIntact());
        Assert.Equal(outstanding, h.Queue.Outstanding);

        AssertEveryCallThrows(h.Queue);

        // Teardown still works: the tokens come back and nothing leaks.
        int[] tokens = new int[8];
        Assert.Equal(outstanding, h.Queue.DetachAll(tokens));
        Assert.True(h.Queue.IsBroken);
    }

    [Fact]
    public void TheBrokenReasonSaysWhatTheDeviceDid()
    {
        using var h = new SplitQueueHarness(8);
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        h.Device.PushUsed(12, 0);

        var error = Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));

        Assert.Contains("descriptor 12", error.Message, StringComparison.Ordinal);
        Assert.Contains("only 8 descriptors", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DescriptorsTheDeviceOverwritesDoNotChangeWhatTheDriverFrees()
    {
        using var h = new SplitQueueHarness(4);
        VirtqBuffer[] chain = [h.Readable("ab"u8), h.Readable("cd"u8), h.Writable(4, out _)];
        Assert.True(h.Queue.TryAdd(chain, 1));
        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? popped));

        for (int i = 0; i < 4; i++)
        {
            h.Device.ScribbleOverDescriptor(i);
        }

        h.Device.Complete(popped, 4);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(1, 4), used);
        Assert.Equal(4, h.Queue.FreeDescriptors);

        // The shadow still links the free list: four single chains fit, and the device sees sound descriptors.
        for (int token = 10; token < 14; token++)
        {
            Assert.True(h.Queue.TryAdd(h.OneReadable(), token));
        }

        h.Queue.KickPrepare();
        Assert.Equal(4, h.Device.Loopback());
        Assert.Equal([10, 11, 12, 13], SplitVirtqueueTests.TakeAllTokens(h.Queue));
    }

    [Fact]
    public void TheDriverPublishesItsOwnAvailIdxWhateverTheDeviceWroteThere()
    {
        using var h = new SplitQueueHarness(8);
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        h.Device.ScribbleOverAvailIdx(1234);

        h.Queue.TryAdd(h.OneReadable(), 2);
        h.Queue.KickPrepare();

        Assert.Equal(2, h.Device.AvailIdx);
        Assert.Equal(2, h.Queue.GetState().AvailableIndex);
    }

    [Fact]
    public void TheShadowRecordsWhatTheDriverWroteForTheDevice()
    {
        using var h = new SplitQueueHarness(8);
        VirtqBuffer[] chain = [h.Readable("ab"u8), h.Writable(4, out _)];
        h.Queue.TryAdd(chain, 1);

        (ulong address, uint length, ushort flags, ushort next) = h.Queue.GetDescriptorShadow(0);
        Assert.Equal(chain[0].Address, address);
        Assert.Equal(2u, length);
        Assert.Equal(SplitRing.DescFlagNext, flags);
        Assert.Equal(1, next);
        (_, _, ushort lastFlags, _) = h.Queue.GetDescriptorShadow(1);
        Assert.Equal(SplitRing.DescFlagWrite, lastFlags);
    }

    private static void DrainUsed(SplitVirtqueue queue)
    {
        while (queue.TryTakeUsed(out _))
        {
        }
    }

    private static void AssertEveryCallThrows(SplitVirtqueue queue)
    {
        VirtqueueState state = queue.GetState();
        AssertMisbehaved(() => queue.TryTakeUsed(out _));
        AssertMisbehaved(() => queue.TryAdd([new VirtqBuffer(state.DescriptorArea, 1, false)], 9));
        AssertMisbehaved(() => queue.KickPrepare());
        AssertMisbehaved(() => queue.HasUsed);
        AssertMisbehaved(() => queue.EnableInterrupts());
        AssertMisbehaved(queue.DisableInterrupts);
    }

    private static void AssertMisbehaved(Func<object> call)
        => Assert.Equal(VirtioErrorReason.DeviceMisbehaved, Assert.Throws<VirtioException>(call).Reason);

    private static void AssertMisbehaved(Action call)
        => Assert.Equal(VirtioErrorReason.DeviceMisbehaved, Assert.Throws<VirtioException>(call).Reason);

    [Fact]
    public void ALengthReportedForAReadOnlyChainIsIgnoredNotTrusted()
    {
        // DPDK 22.11 reports the bytes it read from a transmit chain; nothing was written, so the driver reports 0.
        using var h = new SplitQueueHarness(8);
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 7));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        h.Device.Complete(chains[0], 76);

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(7, 0), used);
        Assert.False(h.Queue.IsBroken);
    }
}
