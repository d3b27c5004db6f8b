using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class SplitVirtqueueNotificationTests
{
    [Fact]
    public void WithoutEventIdxTheDriverNotifiesUnlessTheDeviceSetsNoNotify()
    {
        using var h = new SplitQueueHarness(8);

        h.Queue.TryAdd(h.OneReadable(), 1);
        Assert.True(h.Queue.KickPrepare());

        h.Device.NoNotify = true;
        h.Queue.TryAdd(h.OneReadable(), 2);
        Assert.False(h.Queue.KickPrepare());
        Assert.True(h.Queue.GetState().NotificationsSuppressed);

        h.Device.NoNotify = false;
        h.Queue.TryAdd(h.OneReadable(), 3);
        Assert.True(h.Queue.KickPrepare());

        // Suppressed or not, every chain was published.
        Assert.Equal(3, h.Device.AvailIdx);
    }

    [Fact]
    public void WithEventIdxTheDriverNotifiesOnlyWhenItPublishesTheEntryAtAvailEvent()
    {
        using var h = new SplitQueueHarness(8, eventIdx: true);
        h.Device.PublishAvailEventOnPop = false;
        h.Device.AvailEvent = 4;

        // Entries 0 and 1, then 2 and 3: the device asked to hear about entry 4.
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.TryAdd(h.OneReadable(), 2);
        Assert.False(h.Queue.KickPrepare());
        h.Queue.TryAdd(h.OneReadable(), 3);
        h.Queue.TryAdd(h.OneReadable(), 4);
        Assert.False(h.Queue.KickPrepare());

        h.Queue.TryAdd(h.OneReadable(), 5);
        Assert.True(h.Queue.KickPrepare());

        // Past the event: no more notifications until the device moves avail_event again.
        h.Queue.TryAdd(h.OneReadable(), 6);
        Assert.False(h.Queue.KickPrepare());
        Assert.Equal(6, h.Device.AvailIdx);

        // used.flags is ignored with EVENT_IDX (§2.7.10).
        h.Device.NoNotify = true;
        h.Device.AvailEvent = 6;
        h.Queue.TryAdd(h.OneReadable(), 7);
        Assert.True(h.Queue.KickPrepare());
    }

    [Fact]
    public void WithoutEventIdxDisablingInterruptsSetsNoInterrupt()
    {
        using var h = new SplitQueueHarness(8);
        h.Queue.DisableInterrupts();
        Assert.Equal(SplitRing.AvailFlagNoInterrupt, h.Device.AvailFlags);
        Assert.True(h.Queue.GetState().InterruptsSuppressed);

        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.False(h.Device.TakeInterruptDecision());

        Assert.False(h.Queue.EnableInterrupts());
        Assert.Equal(0, h.Device.AvailFlags);
        h.Queue.TryTakeUsed(out _);

        h.Queue.TryAdd(h.OneReadable(), 2);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.True(h.Device.TakeInterruptDecision());
    }

    [Fact]
    public void WithEventIdxInterruptsAreSteeredByUsedEventAndFlagsStayZero()
    {
        using var h = new SplitQueueHarness(8, eventIdx: true);
        for (int i = 0; i < 3; i++)
        {
            h.Queue.TryAdd(h.OneReadable(), i);
        }

        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.True(h.Device.TakeInterruptDecision());

        // Taking an entry with interrupts on asks for one at the next entry, like virtqueue_get_buf.
        h.Queue.TryTakeUsed(out _);
        Assert.Equal(1, h.Device.UsedEvent);
        h.Queue.TryTakeUsed(out _);
        Assert.Equal(2, h.Device.UsedEvent);

        // Disabled: used_event moves behind what was taken and stays there; flags must remain 0 (§2.7.7.1).
        h.Queue.DisableInterrupts();
        Assert.Equal(0, h.Device.AvailFlags);
        ushort parked = h.Device.UsedEvent;
        Assert.Equal(1, parked);
        h.Queue.TryTakeUsed(out _);
        Assert.Equal(parked, h.Device.UsedEvent);

        for (int i = 0; i < 5; i++)
        {
            h.Queue.TryAdd(h.OneReadable(), 10 + i);
        }

        h.Queue.KickPrepare();
        Assert.Equal(5, h.Device.Loopback());
        Assert.False(h.Device.TakeInterruptDecision());
        Assert.Equal(5, SplitVirtqueueTests.TakeAllTokens(h.Queue).Length);
        Assert.Equal(parked, h.Device.UsedEvent);

        Assert.True(h.Queue.EnableInterrupts());
        Assert.Equal(8, h.Device.UsedEvent);
        h.Queue.TryAdd(h.OneReadable(), 20);
        h.Queue.KickPrepare();
        h.Device.Loopback();
        Assert.True(h.Device.TakeInterruptDecision());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EnableInterruptsReportsEntriesThatArrivedWhileTheyWereOff(bool eventIdx)
    {
        using var h = new SplitQueueHarness(8, eventIdx: eventIdx);
        h.Queue.DisableInterrupts();
        h.Queue.TryAdd(h.OneReadable(), 1);
        h.Queue.KickPrepare();
        Assert.True(h.Queue.EnableInterrupts());

        // The device completes after the driver's last check but before it re-enables: no interrupt is coming for
        // that entry, so EnableInterrupts must say so.
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
