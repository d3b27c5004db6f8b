using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using PacketDotNet;
using PacketDotNet.Utils;

namespace VirtioNet.Diagnostics;

/// <summary>
/// Sends ICMP echo requests to one target (RFC 792) and matches replies by identifier, sequence and payload, as
/// <c>ping</c> does. The next hop (the target on the local subnet, else the router) is resolved by ARP for each
/// request, from the cache after the first. One request is outstanding at a time; a reply that arrives after its
/// request timed out is ignored, not counted.
/// </summary>
public sealed class Pinger
{
    /// <summary>ICMP echo header: type, code, checksum, identifier, sequence (RFC 792).</summary>
    private const int IcmpHeaderLength = 8;

    private readonly DiagnosticLink _link;
    private readonly ArpResolver _arp;

    /// <summary>The echo data; every reply must carry the same bytes.</summary>
    private readonly byte[] _payload;

    /// <summary>One entry per reply, for <see cref="Statistics"/>.</summary>
    private readonly List<TimeSpan> _roundTripTimes = [];

    /// <summary>The last sequence number used; Linux ping's first request is 1.</summary>
    private ushort _sequence;

    /// <summary>The IPv4 identification of the next request (RFC 6864: unique per source, destination and protocol while in flight).</summary>
    private ushort _ipIdentification;

    private int _transmitted;
    private int _errors;
    private long _firstSent;
    private long _lastCompleted;

    /// <summary>Creates a pinger for <paramref name="target"/>.</summary>
    public Pinger(DiagnosticLink link, ArpResolver arp, IPAddress target, PingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(link);
        ArgumentNullException.ThrowIfNull(arp);
        ArgumentNullException.ThrowIfNull(target);
        if (target.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"{target} is not an IPv4 address.", nameof(target));

        _link = link;
        _arp = arp;
        Target = target;
        Options = options ?? new PingOptions();
        Identifier = Options.Identifier ?? (ushort)RandomNumberGenerator.GetInt32(ushort.MaxValue + 1);
        _ipIdentification = (ushort)RandomNumberGenerator.GetInt32(ushort.MaxValue + 1);
        _payload = new byte[Options.PayloadSize];
        Options.FillPayload(_payload);
    }

    /// <summary>The address pinged.</summary>
    public IPAddress Target { get; }

    /// <summary>The ICMP identifier every request carries and every reply must carry.</summary>
    public ushort Identifier { get; }

    /// <summary>Payload, pacing and timeout.</summary>
    public PingOptions Options { get; }

    /// <summary>Linux ping's first line: <c>PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.</c></summary>
    public string Banner =>
        $"PING {Target} ({Target}) {Options.PayloadSize}({Options.PayloadSize + IcmpHeaderLength + IPv4Packet.HeaderMinimumLength}) bytes of data.";

    /// <summary>The summary of every request sent so far.</summary>
    public PingStatistics Statistics => new(
        Target,
        _transmitted,
        _errors,
        _roundTripTimes,
        _transmitted == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_firstSent, _lastCompleted));

    /// <summary>
    /// Sends <paramref name="count"/> requests, <see cref="PingOptions.Interval"/> apart, yielding each outcome as it is
    /// known. No thread is held between requests or while a reply is awaited.
    /// </summary>
    /// <exception cref="DiagnosticsException">Unconfigured link or no route (see <see cref="SendAsync"/>).</exception>
    public IAsyncEnumerable<PingReply> RunAsync(int count, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return RunIterator(count, cancellationToken);
    }

    /// <summary>
    /// Sends the next echo request and waits up to <see cref="PingOptions.Timeout"/> for its reply. Frames that are
    /// not that reply (other traffic, replies with another identifier, sequence or payload) are ignored meanwhile.
    /// </summary>
    /// <exception cref="DiagnosticsException">The link has no address, or the target is off-subnet with no router.
    /// An unanswered ARP is not an exception: it is <see cref="PingStatus.DestinationHostUnreachable"/>.</exception>
    public async ValueTask<PingReply> SendAsync(CancellationToken cancellationToken = default)
    {
        var (local, _) = _link.RequireConfiguration();
        var nextHop = _link.NextHop(Target);
        var sequence = ++_sequence;

        var sendStarted = Stopwatch.GetTimestamp();
        if (_transmitted++ == 0)
            _firstSent = sendStarted;

        if (await _arp.TryResolveAsync(nextHop, cancellationToken).ConfigureAwait(false) is not { } nextHopMac)
        {
            _errors++;
            _lastCompleted = Stopwatch.GetTimestamp();
            return new PingReply(sequence, PingStatus.DestinationHostUnreachable, local, 0, 0, TimeSpan.Zero);
        }

        var request = BuildEchoRequest(local, nextHopMac, sequence);
        var sent = Stopwatch.GetTimestamp();
        await _link.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var reply = await _link.WaitForAsync(Options.Timeout, frame => MatchReply(frame, sequence), cancellationToken).ConfigureAwait(false);
        _lastCompleted = Stopwatch.GetTimestamp();
        if (reply is null)
            return new PingReply(sequence, PingStatus.TimedOut, null, 0, 0, TimeSpan.Zero);

        var roundTrip = Stopwatch.GetElapsedTime(sent, reply.ReceivedAt);
        _roundTripTimes.Add(roundTrip);
        return new PingReply(sequence, PingStatus.Success, Target, reply.Bytes, reply.TimeToLive, roundTrip);
    }

    // RunAsync's iterator, private so that the argument check happens at the call, not at the first MoveNextAsync.
    private async IAsyncEnumerable<PingReply> RunIterator(int count, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var i = 0; i < count; i++)
        {
            var started = Stopwatch.GetTimestamp();
            yield return await SendAsync(cancellationToken).ConfigureAwait(false);
            if (i == count - 1)
                break;

            var wait = Options.Interval - Stopwatch.GetElapsedTime(started);
            if (wait > TimeSpan.Zero)
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private EthernetPacket BuildEchoRequest(IPAddress local, System.Net.NetworkInformation.PhysicalAddress nextHopMac, ushort sequence)
    {
        var icmpBytes = new byte[IcmpHeaderLength + _payload.Length];
        _payload.CopyTo(icmpBytes, IcmpHeaderLength);
        var icmp = new IcmpV4Packet(new ByteArraySegment(icmpBytes))
        {
            TypeCode = IcmpV4TypeCode.EchoRequest,
            Id = Identifier,
            Sequence = sequence,
        };
        var ip = new IPv4Packet(local, Target)
        {
            TimeToLive = Options.TimeToLive,
            Id = _ipIdentification++,
            PayloadPacket = icmp,
        };
        var ethernet = new EthernetPacket(_link.MacAddress, nextHopMac, EthernetType.IPv4) { PayloadPacket = ip };
        icmp.UpdateIcmpChecksum();
        ip.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        return ethernet;
    }

    /// <summary>An echo reply from the target with our identifier, this sequence and our payload, or null.</summary>
    private EchoMatch? MatchReply(EthernetPacket frame, ushort sequence)
    {
        var receivedAt = Stopwatch.GetTimestamp();
        if (frame.PayloadPacket is not IPv4Packet { PayloadPacket: IcmpV4Packet icmp } ip
            || !ip.SourceAddress.Equals(Target) || !ip.DestinationAddress.Equals(_link.LocalAddress)
            || icmp.TypeCode != IcmpV4TypeCode.EchoReply
            || icmp.Id != Identifier || icmp.Sequence != sequence
            || !icmp.Data.AsSpan().SequenceEqual(_payload))
            return null;

        return new EchoMatch(receivedAt, IcmpHeaderLength + _payload.Length, ip.TimeToLive);
    }

    /// <summary>What the reply told: when it was parsed, its ICMP size and its TTL.</summary>
    private sealed record EchoMatch(long ReceivedAt, int Bytes, int TimeToLive);
}
