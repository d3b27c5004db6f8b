using System.Buffers.Binary;

namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// The command-specific data of the VIRTIO_NET_CTRL_MQ and VIRTIO_NET_CTRL_NOTF_COAL commands, little-endian as the
/// spec lays them out. Each Write method returns the bytes written. Ref: virtio v1.2 §5.1.6.5.5, §5.1.6.5.7.1;
/// virtio v1.3 §5.1.6.5.9.
/// </summary>
public static class MultiQueuePayloads
{
    /// <summary>VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN (1).</summary>
    public const int VqPairsMin = 1;

    /// <summary>VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX (0x8000).</summary>
    public const int VqPairsMax = 0x8000;

    /// <summary>Length of <c>struct virtio_net_ctrl_mq</c>: one le16.</summary>
    public const int VqPairsSetLength = 2;

    /// <summary>Length of <c>struct virtio_net_ctrl_coal_vq</c>: le16 vq_index, le16 reserved, then <c>virtio_net_ctrl_coal</c>.</summary>
    public const int VqCoalescingLength = 4 + NotificationCoalescing.Length;

    /// <summary><c>struct virtio_net_ctrl_mq</c> { le16 virtqueue_pairs; } for VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 1 to 0x8000.</exception>
    public static int WriteVqPairsSet(Span<byte> destination, int queuePairs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queuePairs, VqPairsMin);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queuePairs, VqPairsMax);
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)queuePairs);
        return VqPairsSetLength;
    }

    /// <summary>The length of <c>struct virtio_net_rss_config</c> for a configuration.</summary>
    public static int RssConfigLength(RssConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return 4 + 2 + 2 + (2 * configuration.IndirectionTable.Length) + 2 + 1 + configuration.Key.Length;
    }

    /// <summary>
    /// <c>struct virtio_net_rss_config</c> { le32 hash_types; le16 indirection_table_mask; le16 unclassified_queue;
    /// le16 indirection_table[]; le16 max_tx_vq; u8 hash_key_length; u8 hash_key_data[]; } for
    /// VIRTIO_NET_CTRL_MQ_RSS_CONFIG. The configuration should have been validated against the device first.
    /// </summary>
    /// <param name="destination">At least <see cref="RssConfigLength"/> bytes.</param>
    /// <param name="configuration">Hash types, key, table and unclassified queue.</param>
    /// <param name="maxTransmitQueues">max_tx_vq: how many transmit queues the driver uses (1 to 0x8000).</param>
    public static int WriteRssConfig(Span<byte> destination, RssConfiguration configuration, int maxTransmitQueues)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTransmitQueues, VqPairsMin);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxTransmitQueues, VqPairsMax);
        ReadOnlySpan<ushort> table = configuration.IndirectionTable.Span;
        ReadOnlySpan<byte> key = configuration.Key.Span;
        int length = RssConfigLength(configuration);
        if (destination.Length < length)
        {
            throw new ArgumentException($"The RSS configuration needs {length} bytes; the destination has {destination.Length}.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)configuration.HashTypes);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], (ushort)(table.Length - 1));
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], (ushort)configuration.UnclassifiedQueue);
        int offset = 8;
        foreach (ushort entry in table)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(destination[offset..], entry);
            offset += 2;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(destination[offset..], (ushort)maxTransmitQueues);
        destination[offset + 2] = (byte)key.Length;
        key.CopyTo(destination[(offset + 3)..]);
        return length;
    }

    /// <summary>The length of <c>struct virtio_net_hash_config</c> for a key.</summary>
    public static int HashConfigLength(int keyLength) => 4 + 8 + 1 + keyLength;

    /// <summary>
    /// <c>struct virtio_net_hash_config</c> { le32 hash_types; le16 reserved[4]; u8 hash_key_length; u8 hash_key_data[]; }
    /// for VIRTIO_NET_CTRL_MQ_HASH_CONFIG (hash reporting without RSS steering).
    /// </summary>
    public static int WriteHashConfig(Span<byte> destination, RssHashTypes hashTypes, ReadOnlySpan<byte> key)
    {
        if (key.Length > byte.MaxValue)
        {
            throw new ArgumentException($"A hash key has at most 255 bytes; this one has {key.Length}.", nameof(key));
        }

        int length = HashConfigLength(key.Length);
        if (destination.Length < length)
        {
            throw new ArgumentException($"The hash configuration needs {length} bytes; the destination has {destination.Length}.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)hashTypes);
        destination.Slice(4, 8).Clear();
        destination[12] = (byte)key.Length;
        key.CopyTo(destination[13..]);
        return length;
    }

    /// <summary><c>struct virtio_net_ctrl_coal</c> for VIRTIO_NET_CTRL_NOTF_COAL_TX_SET and RX_SET.</summary>
    public static int WriteCoalescing(Span<byte> destination, NotificationCoalescing coalescing)
    {
        coalescing.Write(destination);
        return NotificationCoalescing.Length;
    }

    /// <summary><c>struct virtio_net_ctrl_coal_vq</c> { le16 vq_index; le16 reserved; struct virtio_net_ctrl_coal coal; } for VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET.</summary>
    public static int WriteVqCoalescing(Span<byte> destination, int queueIndex, NotificationCoalescing coalescing)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queueIndex, ushort.MaxValue);
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)queueIndex);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], 0);
        coalescing.Write(destination[4..]);
        return VqCoalescingLength;
    }
}
