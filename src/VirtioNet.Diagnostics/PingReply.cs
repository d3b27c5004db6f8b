using System.Globalization;
using System.Net;

namespace VirtioNet.Diagnostics;

/// <summary>The outcome of one echo request.</summary>
/// <param name="Sequence">The request's ICMP sequence number.</param>
/// <param name="Status">How it ended.</param>
/// <param name="From">Who answered: the target, or our own address for <see cref="PingStatus.DestinationHostUnreachable"/>; null on timeout.</param>
/// <param name="Bytes">ICMP bytes in the reply (header and data), 0 without one.</param>
/// <param name="TimeToLive">The reply's IPv4 TTL, 0 without one.</param>
/// <param name="RoundTripTime">From handing the request to the port to parsing the reply, zero without one.</param>
public sealed record PingReply(
    ushort Sequence,
    PingStatus Status,
    IPAddress? From,
    int Bytes,
    int TimeToLive,
    TimeSpan RoundTripTime)
{
    /// <summary>The line Linux ping prints for this outcome (<c>ping -O</c> wording for a timeout).</summary>
    public override string ToString() => Status switch
    {
        PingStatus.Success => $"{Bytes} bytes from {From}: icmp_seq={Sequence} ttl={TimeToLive} time={FormatMilliseconds(RoundTripTime)} ms",
        PingStatus.DestinationHostUnreachable => $"From {From} icmp_seq={Sequence} Destination Host Unreachable",
        _ => $"no answer yet for icmp_seq={Sequence}",
    };

    /// <summary>iputils' precision: three decimals under 1 ms, two under 10, one under 100, none above.</summary>
    private static string FormatMilliseconds(TimeSpan time)
    {
        var ms = time.TotalMilliseconds;
        var format = ms >= 100 ? "F0" : ms >= 10 ? "F1" : ms >= 1 ? "F2" : "F3";
        return ms.ToString(format, CultureInfo.InvariantCulture);
    }
}
