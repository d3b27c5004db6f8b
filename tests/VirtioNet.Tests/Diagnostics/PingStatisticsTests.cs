using System.Net;
using VirtioNet.Diagnostics;
using Xunit;

namespace VirtioNet.Tests.Diagnostics;

public class PingStatisticsTests
{
    private static readonly IPAddress Target = IPAddress.Parse("10.0.2.2");

    [Fact]
    public void SummaryIsFormattedLikeLinuxPing()
    {
        TimeSpan[] rtts = [Ms(1), Ms(2), Ms(3), Ms(4)];

        var statistics = new PingStatistics(Target, 4, 0, rtts, TimeSpan.FromMilliseconds(3004.4));

        // avg 2.5 ms; mdev = sqrt((1+4+9+16)/4 - 2.5²) = sqrt(1.25) ms = 1118 µs.
        Assert.Equal(
            "--- 10.0.2.2 ping statistics ---\n" +
            "4 packets transmitted, 4 received, 0% packet loss, time 3004ms\n" +
            "rtt min/avg/max/mdev = 1.000/2.500/4.000/1.118 ms",
            statistics.ToString());
        Assert.Equal(TimeSpan.FromMicroseconds(1118), statistics.RoundTripTimeDeviation);
    }

    [Fact]
    public void RoundTripTimesKeepWholeMicroseconds()
    {
        var statistics = new PingStatistics(Target, 3, 0, [Us(45), Us(79), Us(66)], TimeSpan.FromMilliseconds(2002));

        Assert.EndsWith("rtt min/avg/max/mdev = 0.045/0.063/0.079/0.015 ms", statistics.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void SummaryWithoutRepliesHasNoRttLine()
    {
        var statistics = new PingStatistics(Target, 3, 0, [], TimeSpan.FromMilliseconds(2039.6));

        Assert.Equal(
            "--- 10.0.2.2 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2040ms",
            statistics.ToString());
        Assert.Equal(100, statistics.PacketLossPercent);
    }

    [Theory]
    [InlineData(3, 2, "33.3333%")]
    [InlineData(7, 6, "14.2857%")]
    [InlineData(4, 3, "25%")]
    [InlineData(8, 1, "87.5%")]
    public void LossIsPrintedWithSixSignificantDigits(int transmitted, int received, string expected)
    {
        var statistics = new PingStatistics(Target, transmitted, 0, Enumerable.Repeat(Ms(1), received).ToArray(), TimeSpan.Zero);

        Assert.Contains($", {expected} packet loss", statistics.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void MoreRepliesThanRequestsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PingStatistics(Target, 1, 0, [Ms(1), Ms(2)], TimeSpan.Zero));
    }

    [Theory]
    [InlineData(0.123, "time=0.123 ms")]
    [InlineData(4.5678, "time=4.57 ms")]
    [InlineData(12.34, "time=12.3 ms")]
    [InlineData(250.4, "time=250 ms")]
    public void ReplyLineUsesIputilsPrecision(double milliseconds, string expected)
    {
        var reply = new PingReply(7, PingStatus.Success, Target, 64, 255, TimeSpan.FromMilliseconds(milliseconds));

        Assert.Equal($"64 bytes from 10.0.2.2: icmp_seq=7 ttl=255 {expected}", reply.ToString());
    }

    [Fact]
    public void TimeoutLineUsesPingDashOWording()
    {
        Assert.Equal("no answer yet for icmp_seq=3", new PingReply(3, PingStatus.TimedOut, null, 0, 0, TimeSpan.Zero).ToString());
    }

    private static TimeSpan Ms(double value) => TimeSpan.FromMilliseconds(value);

    private static TimeSpan Us(long value) => TimeSpan.FromMicroseconds(value);
}
