using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class PackedVirtqueueNotificationTests
{
    [Fact]
    public void WithoutEventIdxTheDriverNotifiesUnlessTheDeviceDisables()
    {
        using var h = new PackedQueueHarness(8);

        h.Queue.TryAdd(h.OneReadable(), 1);
        Assert.True(h.Queue.KickPrepare());

        h.Device.DeviceEventFlags = PackedRing.RingEventFlagsDisable;
        h.Queue.TryAdd(h.OneReadable(), 2);
        Assert.False(h.Queue.KickPrepare());
        Assert.True(h.Queue.GetState().NotificationsSuppressed);

        // DESC is only valid with EVENT_IDX (§2.8.10): without it, and for the reserved value 3, notifying is the safe answer.
        h.Device.DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        h.Device.DeviceEventOffWrap = PackedRing.EventOffWrap(7, wrap: true);
        h.Queue.TryAdd(h.OneReadable(), 3);
        Assert.True(h.Queue.KickPrepare());
        h.Device.DeviceEventFlags = 3;
        h.Queue.TryAdd(h.OneReadable(), 4);
        Assert.True(h.Queue.KickPrepare());

        h.Device.DeviceEventFlags = PackedRing.RingEventFlagsEnable;
        h.Queue.TryAdd(h.OneReadable(), 5);
        Assert.True(h.Queue.KickPrepare());

        // Suppressed or not, every chain was made available.
        Assert.Equal(5, h.Device.PopAll().Count);
    }

    [Fact]
    public void WithEventIdxTheDriverNotifiesOnlyWhenItMakesTheNamedDescriptorAvailable()
    {
        using var h = new PackedQueueHarness(8, eventIdx: true);
        h.Device.PublishAvailEventOnPop = false;
        h.Device.DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        h.Device.DeviceEventOffWrap = PackedRing.EventOffWrap(4, wrap: true);

        // Slots 0-1, then 2-3: the device asked to hear about slot 4 of the first lap.
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.TryAdd(h.OneReadable(), 2);
        Assert.False(h.Queue.KickPrepare());
        h.Queue.TryAdd([h.Readable("ab"u8), h.Writable(2, out _)], 3);
        Assert.False(h.Queue.KickPrepare());

        // Slots 4-6, a list that holds the named descriptor.
        h.Queue.TryAdd([h.Readable("ab"u8), h.Readable("cd"u8), h.Writable(4, out _)], 4);
        Assert.True(h.Queue.KickPrepare());

        // Past the event: no more notifications until the device names another descriptor.
        h.Queue.TryAdd(h.OneReadable(), 5);
        Assert.False(h.Queue.KickPrepare());
        Assert.Equal(5, h.Device.Loopback());
        Assert.Equal(5, h.TakeAllTokens().Length);

        // Slot 1 of the second lap (wrap counter 0): a batch over slots 0 (second lap) is not enough, one
        // including slot 1 is.
        h.Device.DeviceEventOffWrap = PackedRing.EventOffWrap(1, wrap: false);
        h.Queue.TryAdd(h.OneReadable(), 6);
        Assert.False(h.Queue.KickPrepare());
        h.Queue.TryAdd(h.OneReadable(), 7);
        Assert.True(h.Queue.KickPrepare());

        // The same slot under the wrong wrap counter names the previous lap, long passed.
        h.Device.DeviceEventOffWrap = PackedRing.EventOffWrap(2, wrap: true);
        h.Queue.TryAdd(h.OneReadable(), 8);
        Assert.False(h.Queue.KickPrepare());
    }

    [Theory]
    [InlineData(6, true, true)]
    [InlineData(7, true, true)]
    [InlineData(0, false, true)]
    [InlineData(1, false, false)]
    [InlineData(5, true, false)]
    [InlineData(0, true, false)]
    public void WithEventIdxABatchAcrossTheEndOfTheRingFindsTheEventInEitherLap(int offset, bool wrap, bool expected)
    {
        using var h = new PackedQueueHarness(8, eventIdx: true);
        h.Device.PublishAvailEventOnPop = false;
        h.Device.DeviceEventFlags = PackedRing.RingEventFlagsEnable;
        for (int i = 0; i < 6; i++)
        {
            h.Queue.TryAdd(h.OneReadable(), i);
        }

        h.Queue.KickPrepare();
        h.Device.Loopback();
        h.TakeAllTokens();

        // One list over slots 6, 7 (first lap, wrap counter 1) and 0 (second lap, wrap counter 0).
        h.Device.DeviceEventFlags = PackedRing.RingEventFlagsDesc;
        h.Device.DeviceEventOffWrap = PackedRing.EventOffWrap(offset, wrap);
        Assert.True(h.Queue.TryAdd([h.Readable("a"u8), h.Readable("b"u8), h.Writable(1, out _)], 100));

        Assert.Equal(expected, h.Queue.KickPrepare());
        Assert.Equal(false, h.Queue.GetState().AvailWrapCounter);
    }

    [Fact]
    public void WithoutEventIdxDisablingInterruptsWritesDisable()
    {
        using var h = new PackedQueueHarness(8);
        Assert.Equal(PackedRing.RingEventFlagsEnable, h.Device.DriverEventFlags);
        h.Queue.DisableInterrupts();
        Assert.Equal(PackedRing.RingEventFlagsDisable, h.Device.DriverEventFlags);
        Assert.True(h.Queue.GetState().InterruptsSuppressed);

        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.False(h.Device.TakeInterruptDecision());

        Assert.False(h.Queue.EnableInterrupts());
        Assert.Equal(PackedRing.RingEventFlagsEnable, h.Device.DriverEventFlags);
        h.Queue.TryTakeUsed(out _);

        h.Queue.TryAdd(h.OneReadable(), 2);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.True(h.Device.TakeInterruptDecision());
    }

    [Fact]
    public void WithEventIdxInterruptsAreSteeredByTheDescriptorTheDriverNames()
    {
        using var h = new PackedQueueHarness(8, eventIdx: true);

        // From the start: interrupt at slot 0 of the first lap, the packed form of used_event = 0.
        Assert.Equal(PackedRing.RingEventFlagsDesc, h.Device.DriverEventFlags);
        Assert.Equal(PackedRing.EventOffWrap(0, wrap: true), h.Device.DriverEventOffWrap);
        for (int i = 0; i < 3; i++)
        {
            h.Queue.TryAdd(h.OneReadable(), i);
        }

        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.True(h.Device.TakeInterruptDecision());

        // Taking a chain with interrupts on asks for one at the next used slot, like virtqueue_get_buf.
        h.Queue.TryTakeUsed(out _);
        Assert.Equal(PackedRing.EventOffWrap(1, wrap: true), h.Device.DriverEventOffWrap);
        h.Queue.TryTakeUsed(out _);
        Assert.Equal(PackedRing.EventOffWrap(2, wrap: true), h.Device.DriverEventOffWrap);

        // Disabled: DISABLE, and the named slot no longer moves.
        h.Queue.DisableInterrupts();
        Assert.Equal(PackedRing.RingEventFlagsDisable, h.Device.DriverEventFlags);
        h.Queue.TryTakeUsed(out _);
        Assert.Equal(PackedRing.EventOffWrap(2, wrap: true), h.Device.DriverEventOffWrap);

        for (int i = 0; i < 5; i++)
        {
            h.Queue.TryAdd(h.OneReadable(), 10 + i);
        }

        h.Queue.KickPrepare();
        Assert.Equal(5, h.Device.Loopback());
        Assert.False(h.Device.TakeInterruptDecision());
        Assert.Equal(5, h.TakeAllTokens().Length);

        // Eight slots used: the next is slot 0 of the second lap, wrap counter 0.
        Assert.True(h.Queue.EnableInterrupts());
        Assert.Equal(PackedRing.RingEventFlagsDesc, h.Device.DriverEventFlags);
        Assert.Equal(PackedRing.EventOffWrap(0, wrap: false), h.Device.DriverEventOffWrap);
        h.Queue.TryAdd(h.OneReadable(), 20);
        h.Queue.TryAdd(h.OneReadable(), 21);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.True(h.Device.TakeInterruptDecision());

        // Nothing taken since: the named slot lies behind the device, so the next completion raises nothing.
        h.Queue.TryAdd(h.OneReadable(), 22);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.False(h.Device.TakeInterruptDecision());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EnableInterruptsReportsChainsThatCameBackWhileTheyWereOff(bool eventIdx)
    {
        using var h = new PackedQueueHarness(8, eventIdx: eventIdx);
        h.Queue.DisableInterrupts();
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        Assert.True(h.Queue.EnableInterrupts());

        // The device completes after the driver's last check but before it re-enables: no interrupt is coming for
        // that chain, so EnableInterrupts must say so.
        h.Queue.DisableInterrupts();
        h.Device.Loopback();
        Assert.False(h.Device.TakeInterruptDecision());
        Assert.True(h.Queue.HasUsed);
        Assert.False(h.Queue.EnableInterrupts());

        Assert.True(h.Queue.TryTakeUsed(out UsedBuffer used));
        Assert.Equal(1, used.Token);
        Assert.True(h.Queue.EnableInterrupts());
        Assert.False(h.Queue.HasUsed);
    }
}
