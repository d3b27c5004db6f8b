namespace VirtioNet.Net.Statistics;

/// <summary>
/// The device's own statistics (VIRTIO_NET_F_DEVICE_STATS), as one VIRTIO_NET_CTRL_STATS_GET (or a few, for many
/// queues) returned them: a block per queue and type. Ref: virtio v1.3 §5.1.6.5.11 (Device Statistics).
/// </summary>
public sealed record DeviceStatistics
{
    /// <summary>The types the device said it supports (VIRTIO_NET_CTRL_STATS_QUERY).</summary>
    public required DeviceStatisticsTypes SupportedTypes { get; init; }

    /// <summary>The blocks in the order the device returned them.</summary>
    public required IReadOnlyList<DeviceStatisticsBlock> Blocks { get; init; }

    /// <summary>The block of <paramref name="type"/> (one bit) for queue <paramref name="queueIndex"/>, or null when the device returned none.</summary>
    public DeviceStatisticsBlock? Find(int queueIndex, DeviceStatisticsTypes type)
    {
        foreach (DeviceStatisticsBlock block in Blocks)
        {
            if (block.QueueIndex == queueIndex && block.Type == type)
            {
                return block;
            }
        }

        return null;
    }
}
