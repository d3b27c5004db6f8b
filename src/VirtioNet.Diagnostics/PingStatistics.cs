using System.Globalization;
using System.Net;
using System.Text;

namespace VirtioNet.Diagnostics;

/// <summary>
/// The summary of a ping run, computed as iputils ping does: round-trip times in whole microseconds, the mean
/// deviation as sqrt(mean(t²) − mean(t)²), and <see cref="ToString"/> printing its last lines.
/// </summary>
public sealed class PingStatistics
{
    /// <summary>Computes the summary.</summary>
    /// <param name="target">The address pinged.</param>
    /// <param name="transmitted">Requests sent (or attempted, for unreachable hosts).</param>
    /// <param name="errors">Requests that ended with an error rather than a timeout (unreachable next hop).</param>
    /// <param name="roundTripTimes">One entry per reply received.</param>
    /// <param name="elapsed">From the first request to the end of the last wait.</param>
    public PingStatistics(IPAddress target, int transmitted, int errors, IReadOnlyCollection<TimeSpan> roundTripTimes, TimeSpan elapsed)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(roundTripTimes);
        ArgumentOutOfRangeException.ThrowIfNegative(transmitted);
        ArgumentOutOfRangeException.ThrowIfNegative(errors);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(roundTripTimes.Count + errors, transmitted, nameof(roundTripTimes));

        Target = target;
        Transmitted = transmitted;
        Received = roundTripTimes.Count;
        Errors = errors;
        Elapsed = elapsed;
        if (Received == 0)
            return;

        long min = long.MaxValue, max = 0, sum = 0, sumOfSquares = 0;
        foreach (var rtt in roundTripTimes)
        {
            var us = (long)rtt.TotalMicroseconds;
            min = Math.Min(min, us);
            max = Math.Max(max, us);
            sum += us;
            sumOfSquares += us * us;
        }

        var average = sum / Received;
        var deviation = (long)Math.Sqrt(Math.Max(0, (sumOfSquares / Received) - (average * average)));
        MinimumRoundTripTime = TimeSpan.FromMicroseconds(min);
        AverageRoundTripTime = TimeSpan.FromMicroseconds(average);
        MaximumRoundTripTime = TimeSpan.FromMicroseconds(max);
        RoundTripTimeDeviation = TimeSpan.FromMicroseconds(deviation);
    }

    /// <summary>The address pinged.</summary>
    public IPAddress Target { get; }

    /// <summary>Requests sent.</summary>
    public int Transmitted { get; }

    /// <summary>Matching replies received.</summary>
    public int Received { get; }

    /// <summary>Requests that ended with an error (see <see cref="PingStatus.DestinationHostUnreachable"/>).</summary>
    public int Errors { get; }

    /// <summary>Requests without a reply, as a percentage of those sent; 0 when nothing was sent.</summary>
    public double PacketLossPercent => Transmitted == 0 ? 0 : (Transmitted - Received) * 100.0 / Transmitted;

    /// <summary>From the first request to the end of the last wait.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The shortest round trip; zero without replies.</summary>
    public TimeSpan MinimumRoundTripTime { get; }

    /// <summary>The mean round trip; zero without replies.</summary>
    public TimeSpan AverageRoundTripTime { get; }

    /// <summary>The longest round trip; zero without replies.</summary>
    public TimeSpan MaximumRoundTripTime { get; }

    /// <summary>Linux ping's "mdev": the standard deviation of the round trips; zero without replies.</summary>
    public TimeSpan RoundTripTimeDeviation { get; }

    /// <summary>Linux ping's closing lines, joined with '\n' and without a trailing newline:
    /// <c>--- 10.0.2.2 ping statistics ---</c>, the counts, and the rtt line when there were replies.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"--- {Target} ping statistics ---\n");
        text.Append(CultureInfo.InvariantCulture, $"{Transmitted} packets transmitted, {Received} received");
        if (Errors > 0)
            text.Append(CultureInfo.InvariantCulture, $", +{Errors} errors");
        if (Transmitted > 0)
        {
            // %g in C prints six significant digits without trailing zeros, which G6 reproduces.
            text.Append(CultureInfo.InvariantCulture, $", {PacketLossPercent.ToString("G6", CultureInfo.InvariantCulture)}% packet loss");
            text.Append(CultureInfo.InvariantCulture, $", time {(long)Math.Round(Elapsed.TotalMilliseconds, MidpointRounding.AwayFromZero)}ms");
        }

        if (Received > 0)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"\nrtt min/avg/max/mdev = {Millis(MinimumRoundTripTime)}/{Millis(AverageRoundTripTime)}/{Millis(MaximumRoundTripTime)}/{Millis(RoundTripTimeDeviation)} ms");
        }

        return text.ToString();
    }

    /// <summary>Whole microseconds as milliseconds with three decimals, iputils' "%ld.%03ld".</summary>
    private static string Millis(TimeSpan time)
    {
        var us = (long)time.TotalMicroseconds;
        return string.Create(CultureInfo.InvariantCulture, $"{us / 1000}.{us % 1000:D3}");
    }
}
