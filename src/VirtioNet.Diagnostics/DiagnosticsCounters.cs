namespace VirtioNet.Diagnostics;

/// <summary>
/// What a <see cref="DiagnosticLink"/> saw. Updated by the thread that waits; readable from any thread at any
/// time (a CLI may show them while a ping runs).
/// </summary>
public sealed class DiagnosticsCounters
{
    private long _framesSent;
    private long _framesReceived;
    private long _malformedFrames;
    private long _ignoredFrames;
    private long _arpRequestsAnswered;
    private long _transmitRetries;

    /// <summary>Frames handed to the port and accepted by it.</summary>
    public long FramesSent => Volatile.Read(ref _framesSent);

    /// <summary>Frames the port delivered, whatever became of them.</summary>
    public long FramesReceived => Volatile.Read(ref _framesReceived);

    /// <summary>Frames dropped because they were truncated, inconsistent or failed a checksum.</summary>
    public long MalformedFrames => Volatile.Read(ref _malformedFrames);

    /// <summary>Well-formed frames that were not what the current wait looked for (other hosts, late or wrong replies).</summary>
    public long IgnoredFrames => Volatile.Read(ref _ignoredFrames);

    /// <summary>ARP requests for our address that were answered.</summary>
    public long ArpRequestsAnswered => Volatile.Read(ref _arpRequestsAnswered);

    /// <summary>Times the port refused a frame because its transmit ring was full.</summary>
    public long TransmitRetries => Volatile.Read(ref _transmitRetries);

    internal void CountSent() => Interlocked.Increment(ref _framesSent);

    internal void CountReceived() => Interlocked.Increment(ref _framesReceived);

    internal void CountMalformed() => Interlocked.Increment(ref _malformedFrames);

    internal void CountIgnored() => Interlocked.Increment(ref _ignoredFrames);

    internal void CountArpAnswered() => Interlocked.Increment(ref _arpRequestsAnswered);

    internal void CountTransmitRetry() => Interlocked.Increment(ref _transmitRetries);

    /// <inheritdoc/>
    public override string ToString() =>
        $"sent {FramesSent}, received {FramesReceived}, malformed {MalformedFrames}, ignored {IgnoredFrames}, " +
        $"ARP answered {ArpRequestsAnswered}, transmit retries {TransmitRetries}";
}
