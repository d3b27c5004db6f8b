using System.Diagnostics;

namespace VirtioNet.Cli.Bench;

/// <summary>
/// A bench run's clocks, started when made: the Stopwatch timestamps of its start and of its planned end, and at the end
/// the seconds it took and the CPU time the whole process used meanwhile (the runtime's threads and the interrupt
/// dispatch included).
/// </summary>
internal readonly struct RunClock
{
    private readonly TimeSpan _cpuBefore;

    public RunClock(TimeSpan duration)
    {
        _cpuBefore = CpuTime();
        Start = Stopwatch.GetTimestamp();
        End = Start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
    }

    public long Start { get; }

    public long End { get; }

    public double Seconds => (Stopwatch.GetTimestamp() - Start) / (double)Stopwatch.Frequency;

    public double CpuSeconds => (CpuTime() - _cpuBefore).TotalSeconds;

    private static TimeSpan CpuTime()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }
}
