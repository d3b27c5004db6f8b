namespace VirtioNet.Cli.Bench;

/// <summary>
/// The figures of one latency run; times in nanoseconds, round trip (driver to peer and back). <see cref="RunHeader.Sent"/>
/// includes the warm-up's frames, and <see cref="RunHeader.AllocatedBytes"/> counts from the warm-up's end.
/// </summary>
internal sealed record LatencyResult : RunHeader
{
    /// <summary>Frames per second asked for; 0 for as fast as the ring takes them (under load).</summary>
    public required int Rate { get; init; }

    /// <summary>CPU time per frame sent, in nanoseconds: what a frame costs the driver's process, idle time included.</summary>
    public double CpuNsPerFrame => Sent == 0 ? 0 : CpuSeconds * 1e9 / Sent;

    /// <summary>Frames sent after the warm-up: the ones whose round trip counts.</summary>
    public required long Measured { get; init; }

    /// <summary>Measured frames that came back (and went into the histogram).</summary>
    public required long Returned { get; init; }

    /// <summary>Frames received that did not carry this run's stamp (another sender, or a mangled frame).</summary>
    public required long Foreign { get; init; }

    /// <summary>Garbage collections during the run: 0 unless the no-GC region could not be entered.</summary>
    public required int Collections { get; init; }

    /// <summary>Whether the run was inside a no-GC region.</summary>
    public required bool NoGcRegion { get; init; }

    public required long P50 { get; init; }

    public required long P99 { get; init; }

    public required long P999 { get; init; }

    public required long Max { get; init; }

    public required double Mean { get; init; }

    /// <summary>Measured frames that did not come back within the run and a short drain after it.</summary>
    public long Lost => Math.Max(0, Measured - Returned);
}
