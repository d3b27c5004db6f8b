using VirtioNet.Core;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class PackedVirtqueueHostileDeviceTests
{
    public enum Lie
    {
        IdOutOfRange,
        IdFarOutOfRange,
        IdNeverHandedOut,
        IdAddedButNotYetAvailable,
        IdCompletedTwice,
        LengthPastWritableBuffers,
        UsedFlagsOfThePreviousLap,
        UsedBitWithoutAvailBit,
        UsedDescriptorWithNothingInFlight,
    }

    [Theory]
    [InlineData(Lie.IdOutOfRange, false)]
    [InlineData(Lie.IdFarOutOfRange, true)]
    [InlineData(Lie.IdNeverHandedOut, false)]
    [InlineData(Lie.IdAddedButNotYetAvailable, true)]
    [InlineData(Lie.IdCompletedTwice, true)]
    [InlineData(Lie.IdCompletedTwice, false)]
    [InlineData(Lie.LengthPastWritableBuffers, false)]
    [InlineData(Lie.LengthPastWritableBuffers, true)]
    [InlineData(Lie.UsedFlagsOfThePreviousLap, false)]
    [InlineData(Lie.UsedFlagsOfThePreviousLap, true)]
    [InlineData(Lie.UsedBitWithoutAvailBit, false)]
    [InlineData(Lie.UsedDescriptorWithNothingInFlight, true)]
    [InlineData(Lie.UsedDescriptorWithNothingInFlight, false)]
    public void ALyingDeviceBreaksTheQueueWithoutTheDriverTouchingMemory(Lie lie, bool eventIdx)
    {
        using var h = new PackedQueueHarness(8, eventIdx: eventIdx);

        // Chain A: 3 direct descriptors (slots 0-2, Buffer ID 0), 100 writable bytes. Chain B: one readable descriptor (slot 3, ID 1).
        VirtqBuffer[] a = [h.Readable("hdr"u8), h.Writable(60, out _), h.Writable(40, out _)];
        Assert.True(h.Queue.TryAdd(a, 100));
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 200));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        Assert.Equal([0, 1], chains.ConvertAll(c => (int)c.Head));

        switch (lie)
        {
            case Lie.IdOutOfRange:
                h.Device.PushUsed(8, 0);
                break;
            case Lie.IdFarOutOfRange:
                h.Device.PushUsed(ushort.MaxValue, 0);
                break;
            case Lie.IdNeverHandedOut:
                h.Device.PushUsed(5, 0);
                break;
            case Lie.IdAddedButNotYetAvailable:
                // ID 2 is written in slot 4 but its head flags wait for KickPrepare: the device cannot have used it.
                Assert.True(h.Queue.TryAdd(h.OneReadable(), 300));
                h.Device.PushUsed(2, 0);
                break;
            case Lie.IdCompletedTwice:
                h.Device.Complete(chains[1], 0);
                Assert.True(h.Queue.TryTakeUsed(out UsedBuffer first));
                Assert.Equal(200, first.Token);
                h.Device.PushUsed(1, 0);
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
            case Lie.UsedFlagsOfThePreviousLap:
                h.Device.PushRawUsed(0, 0, PackedRing.UsedFlags(wrap: false));
                break;
            case Lie.UsedBitWithoutAvailBit:
                h.Device.PushRawUsed(0, 0, PackedRing.DescFlagUsed);
                break;
            case Lie.UsedDescriptorWithNothingInFlight:
                h.Device.Complete(chains[1], 0);
                h.Device.Complete(chains[0], 0);
                Assert.Equal(2, h.TakeAllTokens().Length);
                h.Device.PushUsed(0, 0);
                break;
        }

        int outstanding = h.Queue.Outstanding;
        byte[] before = h.Memory.SnapshotAll();

        var error = Assert.Throws<VirtioException>(() => h.TakeAllTokens());

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
        using var h = new PackedQueueHarness(8);
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        h.Device.PushUsed(12, 0);

        var error = Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));

        Assert.Contains("buffer 12", error.Message, StringComparison.Ordinal);
        Assert.Contains("only 8 buffer IDs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AChainTheDeviceHasNotUsedYetIsNotAMess()
    {
        using var h = new PackedQueueHarness(8);
        h.Queue.TryAdd([h.Readable("ab"u8), h.Writable(2, out _)], 1);
        h.Queue.TryAdd(h.OneReadable(), 2);

        // Not yet available, then available but not used: nothing to take, nothing wrong.
        Assert.False(h.Queue.TryTakeUsed(out _));
        h.Queue.KickPrepare();
        Assert.False(h.Queue.TryTakeUsed(out _));
        Assert.False(h.Queue.HasUsed);
        Assert.False(h.Queue.IsBroken);
    }

    [Fact]
    public void DescriptorsTheDeviceOverwritesDoNotChangeWhatTheDriverFrees()
    {
        using var h = new PackedQueueHarness(4);
        VirtqBuffer[] chain = [h.Readable("ab"u8), h.Readable("cd"u8), h.Writable(4, out _)];
        Assert.True(h.Queue.TryAdd(chain, 1));
        h.Queue.KickPrepare();
        Assert.True(h.Device.TryPop(out DeviceChain? popped));

        // The device may write over the slots of a list it holds; the driver skips them by its own count.
        h.Device.ScribbleOverDescriptor(1);
        h.Device.ScribbleOverDescriptor(2);

        h.Device.Complete(popped, 4);
        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(1, 4), used);
        Assert.Equal(4, h.Queue.FreeDescriptors);

        // Four single chains fill slots 3, 0, 1, 2, and the device sees sound descriptors in all of them.
        for (int token = 10; token < 14; token++)
        {
            Assert.True(h.Queue.TryAdd(h.OneReadable(), token));
        }

        h.Queue.KickPrepare();
        Assert.Equal(4, h.Device.Loopback());
        Assert.Equal([10, 11, 12, 13], h.TakeAllTokens());
    }

    private static void AssertEveryCallThrows(PackedVirtqueue queue)
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
        using var h = new PackedQueueHarness(8);
        Assert.True(h.Queue.TryAdd(h.OneReadable(), 7));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.Device.PopAll();
        h.Device.Complete(chains[0], 76);

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(new UsedBuffer(7, 0), used);
        Assert.False(h.Queue.IsBroken);
    }
}
