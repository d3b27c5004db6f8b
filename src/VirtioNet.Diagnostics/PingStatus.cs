namespace VirtioNet.Diagnostics;

/// <summary>How one echo request ended.</summary>
public enum PingStatus
{
    /// <summary>A matching echo reply arrived in time.</summary>
    Success,

    /// <summary>No matching echo reply arrived before the timeout.</summary>
    TimedOut,

    /// <summary>The next hop did not answer ARP, so the request was never sent (Linux ping's "Destination Host Unreachable").</summary>
    DestinationHostUnreachable,
}
