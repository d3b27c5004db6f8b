namespace VirtioNet.Net.Statistics;

/// <summary>
/// One statistics block of a VIRTIO_NET_CTRL_STATS_GET reply: its <c>struct virtio_net_stats_reply_hdr</c> (type,
/// vq_index) and the counters of the structure the type names. Ref: virtio v1.3 §5.1.6.5.11 (Device Statistics).
/// </summary>
public sealed record DeviceStatisticsBlock
{
    /// <summary>The type bit this block answers.</summary>
    public required DeviceStatisticsTypes Type { get; init; }

    /// <summary>The virtqueue the counters are about (0:rx0 1:tx0 ... 2N:controlq).</summary>
    public required int QueueIndex { get; init; }

    /// <summary>The counters in the order of the spec's structure.</summary>
    public required IReadOnlyList<DeviceStatisticsCounter> Counters { get; init; }

    /// <summary>The value of the counter named <paramref name="name"/> (e.g. "rx_packets"), or null when the block has none of that name.</summary>
    public ulong? this[string name]
    {
        get
        {
            foreach (DeviceStatisticsCounter counter in Counters)
            {
                if (string.Equals(counter.Name, name, StringComparison.Ordinal))
                {
                    return counter.Value;
                }
            }

            return null;
        }
    }
}
