using VirtioNet.Net;

namespace VirtioNet.Cli.Bench;

/// <summary>The figures every bench run records, whatever it measured: how the driver waited, what it sent, for how long and at what cost.</summary>
internal abstract record RunHeader
{
    /// <summary>How the driver learned of received frames: busy-polling, or sleeping until the device interrupted.</summary>
    public required OperationMode OperationMode { get; init; }

    public required int FrameSize { get; init; }

    public required double Seconds { get; init; }

    /// <summary>Frames handed to the device.</summary>
    public required long Sent { get; init; }

    /// <summary>Times a receive queue was empty and the driver slept in WaitForReceive until an interrupt (interrupt and adaptive modes only).</summary>
    public required long ReceiveWaits { get; init; }

    /// <summary>CPU time the process used over the run (all its threads).</summary>
    public required double CpuSeconds { get; init; }

    /// <summary>Bytes the measured loop allocated.</summary>
    public required long AllocatedBytes { get; init; }
}
