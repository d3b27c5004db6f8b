namespace VirtioNet.Cli.Bench;

/// <summary>What a benchmark run measures.</summary>
internal enum BenchMode
{
    /// <summary>Send as fast as possible; the peer drains.</summary>
    Tx,

    /// <summary>Receive what the peer generates.</summary>
    Rx,

    /// <summary>Send, and receive what the peer forwards back.</summary>
    Loopback,

    /// <summary>Send stamped frames and time each one's round trip through a peer that sends it back.</summary>
    Latency,
}
