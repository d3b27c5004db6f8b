using VirtioNet.Net.FlowControl;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>The token bucket against a clock the test moves by hand: exact, repeatable answers.</summary>
public sealed class FlowControlTokenBucketTests
{
    /// <summary>A clock that only moves when told, with a 1 MHz timestamp (not the TimeSpan tick) to catch unit mix-ups.</summary>
    private sealed class ManualClock : TimeProvider
    {
        public long Now { get; set; } = 5_000_000;

        public override long TimestampFrequency => 1_000_000;

        public override long GetTimestamp() => Now;

        public void Advance(TimeSpan by) => Now += (long)(by.TotalSeconds * TimestampFrequency);
    }

    [Fact]
    public void ANewBucketIsFullAndRefusesOnceTheBurstIsSpent()
    {
        var clock = new ManualClock();
        var bucket = new TokenBucket(ratePerSecond: 1000, burst: 1500, clock);
        Assert.Equal(1500, bucket.Available);
        Assert.True(bucket.TryConsume(1000));
        Assert.True(bucket.TryConsume(500));
        Assert.False(bucket.TryConsume(1));
        Assert.Equal(1, bucket.Throttled);
        Assert.Equal(0, bucket.Available);
    }

    [Fact]
    public void TokensAccrueAtTheRateIncludingFractionsCarriedAcrossRefills()
    {
        var clock = new ManualClock();
        var bucket = new TokenBucket(ratePerSecond: 3, burst: 100, clock);
        Assert.True(bucket.TryConsume(100));

        // 3 tokens per second: after 0.5 s there is 1.5 tokens, so one; the half carries over to the next 0.5 s.
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(1, bucket.Available);
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(3, bucket.Available);
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(33, bucket.Available);
    }

    [Fact]
    public void TheBucketNeverHoldsMoreThanItsBurst()
    {
        var clock = new ManualClock();
        var bucket = new TokenBucket(ratePerSecond: 1_250_000_000, burst: 64 * 1024, clock);
        Assert.True(bucket.TryConsume(64 * 1024));
        clock.Advance(TimeSpan.FromDays(3));
        Assert.Equal(64 * 1024, bucket.Available);
    }

    [Fact]
    public void AThrottledSenderIsToldHowLongToWait()
    {
        var clock = new ManualClock();
        var bucket = new TokenBucket(ratePerSecond: 1000, burst: 1000, clock);
        Assert.True(bucket.TryConsume(1000));
        Assert.Equal(TimeSpan.FromMilliseconds(250), bucket.TimeUntilAvailable(250));
        clock.Advance(TimeSpan.FromMilliseconds(249));
        Assert.False(bucket.TryConsume(250));
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(bucket.TryConsume(250));
        Assert.Equal(TimeSpan.Zero, bucket.TimeUntilAvailable(0));
    }

    [Fact]
    public void ARefundGivesTokensBackUpToTheBurst()
    {
        var bucket = new TokenBucket(ratePerSecond: 10, burst: 100, new ManualClock());
        Assert.True(bucket.TryConsume(60));
        bucket.Refund(60);
        Assert.Equal(100, bucket.Available);
        bucket.Refund(5);
        Assert.Equal(100, bucket.Available);
    }

    [Fact]
    public void ARequestLargerThanTheBurstCouldNeverSucceedAndIsRejected()
    {
        var bucket = new TokenBucket(ratePerSecond: 10, burst: 100, new ManualClock());
        Assert.Throws<ArgumentOutOfRangeException>(() => bucket.TryConsume(101));
        Assert.Throws<ArgumentOutOfRangeException>(() => bucket.TryConsume(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(0, 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(10, 0));
    }

    [Fact]
    public void TheRateHoldsOverManySmallSteps()
    {
        // 1 ms steps at 1500 bytes per second: 1.5 tokens per step, so exactly 1500 after a second of steps.
        var clock = new ManualClock();
        var bucket = new TokenBucket(ratePerSecond: 1500, burst: 1_000_000, clock);
        Assert.True(bucket.TryConsume(1_000_000));
        long sent = 0;
        for (int step = 0; step < 1000; step++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(1));
            while (bucket.TryConsume(1))
            {
                sent++;
            }
        }

        Assert.Equal(1500, sent);
    }
}
