namespace VirtioNet.Cli.Bench;

/// <summary>The driver-side figures of one run; <see cref="RunHeader.Sent"/> counts in tx and loopback.</summary>
internal sealed record BenchResult : RunHeader
{
    public required BenchMode Mode { get; init; }

    public required int Burst { get; init; }

    /// <summary>Frames taken from the device (rx, loopback).</summary>
    public required long Received { get; init; }

    public required long Kicks { get; init; }

    /// <summary>Receive waits that a used-buffer interrupt ended (the receive queues' <c>Interrupts</c> statistic); 0 in poll mode.</summary>
    public required long Interrupts { get; init; }

    /// <summary>The frames that count for this mode: sent for tx, received for rx and loopback.</summary>
    public long Counted => Mode == BenchMode.Tx ? Sent : Received;

    public double Mpps => Counted / Seconds / 1e6;

    /// <summary>Line rate including the 20 bytes of preamble, start delimiter and gap, and the 4-byte FCS, as NICs report it.</summary>
    public double Gbps => Counted * (FrameSize + 4 + 20) * 8.0 / Seconds / 1e9;

    public double KicksPerPacket => (Sent + Received) == 0 ? 0 : (double)Kicks / (Sent + Received);

    public double InterruptsPerPacket => (Sent + Received) == 0 ? 0 : (double)Interrupts / (Sent + Received);

    public double CpuNanosecondsPerPacket => Counted == 0 ? 0 : CpuSeconds * 1e9 / Counted;
}
