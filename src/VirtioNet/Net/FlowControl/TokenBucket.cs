namespace VirtioNet.Net.FlowControl;

/// <summary>
/// A token bucket: tokens (bytes) accrue at <see cref="RatePerSecond"/> up to <see cref="Burst"/>, and each frame
/// spends its length. Virtio has no transmit rate limit of its own, so the driver shapes in software what a NIC would
/// in hardware. The arithmetic is exact (integer ticks × rate, with the remainder carried), so a test clock gives the
/// same answer every run. Not thread-safe: it belongs to the worker that owns its queue.
/// </summary>
public sealed class TokenBucket
{
    // Where time comes from: the system's in production, a test's own in tests.
    private readonly TimeProvider _clock;

    // Ticks per second of _clock's timestamps.
    private readonly long _frequency;

    // Tokens available now (as of _lastTimestamp).
    private long _tokens;

    // Credit of less than one token, in token·ticks (units of 1/_frequency tokens), carried to the next refill.
    private long _remainder;

    // The timestamp the bucket was last brought up to date at.
    private long _lastTimestamp;

    /// <summary>Creates a full bucket.</summary>
    /// <param name="ratePerSecond">Tokens (bytes) added per second; at least 1.</param>
    /// <param name="burst">The bucket's size: the most tokens that can be spent at once after an idle period; at least 1.</param>
    /// <param name="clock">The clock; default <see cref="TimeProvider.System"/>.</param>
    public TokenBucket(long ratePerSecond, long burst, TimeProvider? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ratePerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        _clock = clock ?? TimeProvider.System;
        _frequency = _clock.TimestampFrequency;
        RatePerSecond = ratePerSecond;
        Burst = burst;
        _tokens = burst;
        _lastTimestamp = _clock.GetTimestamp();
    }

    /// <summary>Tokens added per second.</summary>
    public long RatePerSecond { get; }

    /// <summary>The most tokens the bucket holds.</summary>
    public long Burst { get; }

    /// <summary>Tokens available now.</summary>
    public long Available
    {
        get
        {
            Refill();
            return _tokens;
        }
    }

    /// <summary>Requests refused because the bucket held too few tokens.</summary>
    public long Throttled { get; private set; }

    /// <summary>
    /// Spends <paramref name="tokens"/> if that many are available and returns true; otherwise spends nothing, counts
    /// the refusal and returns false (back-pressure: try again later).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative, or more than <see cref="Burst"/>: such a request could never succeed.</exception>
    public bool TryConsume(long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokens, Burst);
        Refill();
        if (_tokens < tokens)
        {
            Throttled++;
            return false;
        }

        _tokens -= tokens;
        return true;
    }

    /// <summary>Gives back tokens taken by <see cref="TryConsume"/> for a frame that was not sent after all (the queue was full).</summary>
    public void Refund(long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        _tokens = Math.Min(Burst, _tokens + tokens);
    }

    /// <summary>How long until <paramref name="tokens"/> are available (zero when they are now).</summary>
    public TimeSpan TimeUntilAvailable(long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokens, Burst);
        Refill();
        if (_tokens >= tokens)
        {
            return TimeSpan.Zero;
        }

        // Token·ticks still missing, rounded up to whole ticks of the clock.
        Int128 missing = ((Int128)(tokens - _tokens) * _frequency) - _remainder;
        Int128 ticks = (missing + RatePerSecond - 1) / RatePerSecond;
        return TimeSpan.FromSeconds((double)ticks / _frequency);
    }

    private void Refill()
    {
        long now = _clock.GetTimestamp();
        long elapsed = now - _lastTimestamp;
        if (elapsed <= 0)
        {
            return;
        }

        _lastTimestamp = now;
        if (_tokens >= Burst)
        {
            _remainder = 0;
            return;
        }

        // Int128: a long idle period times a high rate overflows 64 bits (a day at 10 Gbit/s with a 1 GHz clock).
        Int128 credit = ((Int128)elapsed * RatePerSecond) + _remainder;
        Int128 whole = credit / _frequency;
        if (whole >= Burst - _tokens)
        {
            _tokens = Burst;
            _remainder = 0;
        }
        else
        {
            _tokens += (long)whole;
            _remainder = (long)(credit - (whole * _frequency));
        }
    }
}
