using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The delayed used-buffer notification a transmit queue asks for when its ring is full (Linux's
/// virtqueue_enable_cb_delayed): the event index set about three quarters of the outstanding chains ahead, on both
/// layouts, with the index arithmetic checked across the 16-bit and ring wrap-arounds. Ref: virtio v1.2 §2.7.10, §2.8.10.
/// </summary>
public sealed class DelayedNotificationTests
{
    public static TheoryData<RingLayout> Layouts => [RingLayout.Split, RingLayout.Packed];

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(10, 11, 10)]
    [InlineData(10, 18, 16)]
    [InlineData(100, 356, 292)]
    [InlineData(65530, 4, 1)]
    [InlineData(65535, 255, 191)]
    public void TheSplitUsedEventIsThreeQuartersOfTheOutstandingChainsAheadAcrossTheIndexWrap(int lastUsed, int avail, int expected)
    {
        Assert.Equal((ushort)expected, SplitRing.DelayedUsedEvent((ushort)lastUsed, (ushort)avail));
    }

    [Theory]
    [InlineData(0, true, 8, 16, 6, true)]
    [InlineData(10, true, 8, 16, 0, false)]
    [InlineData(15, false, 16, 16, 11, true)]
    [InlineData(3, true, 0, 16, 3, true)]
    [InlineData(255, true, 256, 256, 191, false)]
    public void ThePackedEventSlotFlipsItsWrapCounterWhenItPassesTheEndOfTheRing(int nextUsed, bool usedWrap, int inFlight, int size, int slot, bool wrap)
    {
        Assert.Equal((slot, wrap), PackedRing.DelayedEventSlot(nextUsed, usedWrap, inFlight, size));
        Assert.Equal(PackedRing.EventOffWrap(slot, wrap), PackedRing.DelayedEventOffWrap(nextUsed, usedWrap, inFlight, size));
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void AFullRingIsNotifiedOnlyOnceThreeQuartersOfItHaveBeenUsed(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, eventIdx: true);
        Fill(h, 8);
        List<DeviceChain> chains = h.PopAll();
        Assert.True(h.Virtqueue.EnableInterruptsDelayed(), "nothing was used before the request");

        // 3/4 of 8 is 6 ahead: the device's first six completions raise nothing, the seventh crosses the event.
        for (int i = 0; i < 6; i++)
        {
            h.Complete(chains[i], 0);
            Assert.False(InterruptDecision(h), $"completion {i + 1} of 8 asked for a notification");
        }

        h.Complete(chains[6], 0);
        Assert.True(InterruptDecision(h), "the seventh completion crossed the delayed event but raised nothing");
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void ARequestMadeAfterTheDeviceHadPassedTheEventPointSaysSo(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, eventIdx: true);
        Fill(h, 8);
        List<DeviceChain> chains = h.PopAll();

        // Seven of eight used before the driver asks: the event point (6 ahead) is behind the device, no interrupt will come.
        for (int i = 0; i < 7; i++)
        {
            h.Complete(chains[i], 0);
        }

        Assert.False(h.Virtqueue.EnableInterruptsDelayed());
        Assert.Equal(7, h.TakeAll().Count);
    }

    [Fact]
    public void TheSplitRequestWritesTheDelayedUsedEventAfterTheIndexWrapped()
    {
        // Walk the 16-bit indexes to just below the wrap, then fill the ring: used_event wraps past 65535.
        using var h = new SplitQueueHarness(8, eventIdx: true);
        for (int lap = 0; lap < (65528 / 8) + 1; lap++)
        {
            // Eight at a time up to 65528, then four more.
            Fill(h, lap < 65528 / 8 ? 8 : 4);
            foreach (DeviceChain chain in h.PopAll())
            {
                h.Complete(chain, 0);
            }

            h.TakeAll();
        }

        Fill(h, 8);
        h.PopAll();
        Assert.True(h.Queue.EnableInterruptsDelayed());
        Assert.Equal(unchecked((ushort)(65532 + 6)), h.Device.UsedEvent);
        Assert.Equal(SplitRing.DelayedUsedEvent(65532, unchecked((ushort)(65532 + 8))), h.Device.UsedEvent);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void WithoutEventIndexTheDelayedRequestEnablesTheNextNotification(RingLayout layout)
    {
        using var h = QueueHarness.Create(layout, 8, eventIdx: false);
        Fill(h, 4);
        List<DeviceChain> chains = h.PopAll();
        h.Virtqueue.DisableInterrupts();
        Assert.True(h.Virtqueue.EnableInterruptsDelayed());
        h.Complete(chains[0], 0);
        Assert.True(InterruptDecision(h));
    }

    private static void Fill(QueueHarness h, int count)
    {
        for (int i = 0; i < count; i++)
        {
            Assert.True(h.Virtqueue.TryAdd(h.OneReadable(), i));
        }

        h.Virtqueue.KickPrepare();
    }

    private static bool InterruptDecision(QueueHarness h) => h switch
    {
        SplitQueueHarness split => split.Device.TakeInterruptDecision(),
        PackedQueueHarness packed => packed.Device.TakeInterruptDecision(),
        _ => throw new ArgumentOutOfRangeException(nameof(h)),
    };
}
