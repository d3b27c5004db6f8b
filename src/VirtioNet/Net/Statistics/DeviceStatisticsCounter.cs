namespace VirtioNet.Net.Statistics;

/// <summary>One counter of a device statistics block, with the spec's field name (e.g. <c>rx_packets</c>).</summary>
/// <param name="Name">The field name in the spec's structure, as <c>ethtool -S</c> would print it.</param>
/// <param name="Value">The le64 value; it wraps to zero on overflow (§5.1.6.5.11).</param>
public readonly record struct DeviceStatisticsCounter(string Name, ulong Value);
