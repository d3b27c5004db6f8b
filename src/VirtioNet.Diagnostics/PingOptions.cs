namespace VirtioNet.Diagnostics;

/// <summary>How <see cref="Pinger"/> builds and paces echo requests. Values are checked when set; defaults are Linux ping's.</summary>
public sealed class PingOptions
{
    /// <summary>The largest payload of one unfragmented IPv4 datagram: 65535 less 20 (IP) and 8 (ICMP).</summary>
    public const int MaximumPayloadSize = 65_507;

    private readonly byte[]? _pattern;

    /// <summary>ICMP data bytes after the 8-byte header. Default 56 (64 bytes of ICMP, 84 of IP), as <c>ping -s</c>.</summary>
    public int PayloadSize { get; init => field = OptionChecks.InRange(value, 0, MaximumPayloadSize); } = 56;

    /// <summary>
    /// Bytes repeated to fill the payload, as <c>ping -p</c>; null (the default) fills byte i with i mod 256, so that
    /// a reply with shifted or damaged data never compares equal.
    /// </summary>
    public IReadOnlyList<byte>? Pattern
    {
        get => _pattern;
        init
        {
            if (value is { Count: 0 })
                throw new ArgumentException("A pattern needs at least one byte.", nameof(value));
            _pattern = value?.ToArray();
        }
    }

    /// <summary>How long each request waits for its reply. Default 1 s.</summary>
    public TimeSpan Timeout { get; init => field = OptionChecks.Positive(value); } = TimeSpan.FromSeconds(1);

    /// <summary>Time from one request's send to the next one's in <see cref="Pinger.RunAsync"/>. Default 1 s, as <c>ping -i</c>.</summary>
    public TimeSpan Interval { get; init => field = OptionChecks.NotNegative(value); } = TimeSpan.FromSeconds(1);

    /// <summary>IPv4 TTL of requests. Default 64, Linux's net.ipv4.ip_default_ttl.</summary>
    public int TimeToLive { get; init => field = OptionChecks.InRange(value, 1, 255); } = 64;

    /// <summary>The ICMP identifier, or null (the default) for a random one per <see cref="Pinger"/>.</summary>
    public ushort? Identifier { get; init; }

    /// <summary>Fills <paramref name="payload"/> with <see cref="Pattern"/> or the default counting pattern.</summary>
    internal void FillPayload(Span<byte> payload)
    {
        for (var i = 0; i < payload.Length; i++)
            payload[i] = _pattern is null ? (byte)i : _pattern[i % _pattern.Length];
    }
}
