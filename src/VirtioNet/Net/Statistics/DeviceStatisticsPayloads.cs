using System.Buffers.Binary;
using VirtioNet.Core;

namespace VirtioNet.Net.Statistics;

/// <summary>
/// The command-specific data and results of the VIRTIO_NET_CTRL_STATS class: the capabilities (one le64), the request
/// (<c>struct virtio_net_ctrl_queue_stats</c>, 16 bytes per queue) and the reply, a sequence of blocks each led by
/// <c>struct virtio_net_stats_reply_hdr</c> { u8 type; u8 reserved; le16 vq_index; le16 reserved1; le16 size; }.
/// The reply comes from the device and is parsed as untrusted input. Ref: virtio v1.3 §5.1.6.5.11 (Device Statistics).
/// </summary>
internal static class DeviceStatisticsPayloads
{
    /// <summary>Length of <c>struct virtio_net_stats_capabilities</c>: le64 supported_stats_types[1].</summary>
    public const int CapabilitiesLength = 8;

    /// <summary>Length of one entry of <c>struct virtio_net_ctrl_queue_stats</c>: le16 vq_index, le16 reserved[3], le64 types_bitmap[1].</summary>
    public const int QueueRequestLength = 16;

    /// <summary>Length of <c>struct virtio_net_stats_reply_hdr</c>.</summary>
    public const int ReplyHeaderLength = 8;

    // The types the spec defines, with the le64 fields of each structure after its header, in order.
    private static readonly Dictionary<DeviceStatisticsTypes, string[]> Layouts = new()
    {
        [DeviceStatisticsTypes.Cvq] = ["command_num", "ok_num"],
        [DeviceStatisticsTypes.RxBasic] = ["rx_notifications", "rx_packets", "rx_bytes", "rx_interrupts", "rx_drops", "rx_drop_overruns"],
        [DeviceStatisticsTypes.RxCsum] = ["rx_csum_valid", "rx_needs_csum", "rx_csum_none", "rx_csum_bad"],
        [DeviceStatisticsTypes.RxGso] = ["rx_gso_packets", "rx_gso_bytes", "rx_gso_packets_coalesced", "rx_gso_bytes_coalesced"],
        [DeviceStatisticsTypes.RxSpeed] = ["rx_packets_allowance_exceeded", "rx_bytes_allowance_exceeded"],
        [DeviceStatisticsTypes.TxBasic] = ["tx_notifications", "tx_packets", "tx_bytes", "tx_interrupts", "tx_drops", "tx_drop_malformed"],
        [DeviceStatisticsTypes.TxCsum] = ["tx_csum_none", "tx_needs_csum"],
        [DeviceStatisticsTypes.TxGso] = ["tx_gso_packets", "tx_gso_bytes", "tx_gso_segments", "tx_gso_segments_bytes", "tx_gso_packets_noseg", "tx_gso_bytes_noseg"],
        [DeviceStatisticsTypes.TxSpeed] = ["tx_packets_allowance_exceeded", "tx_bytes_allowance_exceeded"],
    };

    /// <summary>Every type the spec defines.</summary>
    public const DeviceStatisticsTypes Known =
        DeviceStatisticsTypes.RxBasic | DeviceStatisticsTypes.RxCsum | DeviceStatisticsTypes.RxGso | DeviceStatisticsTypes.RxSpeed |
        DeviceStatisticsTypes.TxBasic | DeviceStatisticsTypes.TxCsum | DeviceStatisticsTypes.TxGso | DeviceStatisticsTypes.TxSpeed |
        DeviceStatisticsTypes.Cvq;

    /// <summary>The receive queue types.</summary>
    public const DeviceStatisticsTypes Receive =
        DeviceStatisticsTypes.RxBasic | DeviceStatisticsTypes.RxCsum | DeviceStatisticsTypes.RxGso | DeviceStatisticsTypes.RxSpeed;

    /// <summary>The transmit queue types.</summary>
    public const DeviceStatisticsTypes Transmit =
        DeviceStatisticsTypes.TxBasic | DeviceStatisticsTypes.TxCsum | DeviceStatisticsTypes.TxGso | DeviceStatisticsTypes.TxSpeed;

    /// <summary>The total size of the blocks answering <paramref name="types"/> (known types only), headers included.</summary>
    public static int ReplyLength(DeviceStatisticsTypes types)
    {
        int length = 0;
        foreach ((DeviceStatisticsTypes type, string[] fields) in Layouts)
        {
            if ((types & type) != 0)
            {
                length += BlockLength(fields);
            }
        }

        return length;
    }

    /// <summary>Reads <c>supported_stats_types</c>; bits the spec does not define are dropped (a driver never asks for them).</summary>
    /// <exception cref="VirtioException">The reply is shorter than the structure.</exception>
    public static DeviceStatisticsTypes ReadCapabilities(ReadOnlySpan<byte> reply, string source)
    {
        if (reply.Length < CapabilitiesLength)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{source}: the device answered VIRTIO_NET_CTRL_STATS_QUERY with {reply.Length} bytes; struct virtio_net_stats_capabilities has {CapabilitiesLength}.");
        }

        return (DeviceStatisticsTypes)BinaryPrimitives.ReadUInt64LittleEndian(reply) & Known;
    }

    /// <summary>Writes one entry of <c>struct virtio_net_ctrl_queue_stats</c>; returns its length.</summary>
    public static int WriteQueueRequest(Span<byte> destination, int queueIndex, DeviceStatisticsTypes types)
    {
        Span<byte> entry = destination[..QueueRequestLength];
        entry.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(entry, checked((ushort)queueIndex));
        BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], (ulong)types);
        return QueueRequestLength;
    }

    /// <summary>
    /// Parses a VIRTIO_NET_CTRL_STATS_GET reply of <paramref name="reply"/>'s length (the used length, so nothing past
    /// what the device wrote). Each block must fit in what is left and be as long as its type's structure; a block of a
    /// type the spec does not define is skipped by its size; a block of a known type nobody asked for, for a queue
    /// nobody asked about, or repeated, is a lie. Blocks the device left out are simply absent.
    /// </summary>
    /// <param name="reply">The reply bytes.</param>
    /// <param name="requested">The types asked for, by queue index.</param>
    /// <param name="source">Who answered, for messages.</param>
    /// <param name="blocks">Receives the parsed blocks.</param>
    /// <exception cref="VirtioException"><see cref="VirtioErrorReason.DeviceMisbehaved"/>, saying which block and why.</exception>
    public static void ParseReply(ReadOnlySpan<byte> reply, IReadOnlyDictionary<int, DeviceStatisticsTypes> requested, string source, List<DeviceStatisticsBlock> blocks)
    {
        var seen = new Dictionary<int, DeviceStatisticsTypes>();
        int offset = 0;
        while (offset < reply.Length)
        {
            ReadOnlySpan<byte> rest = reply[offset..];
            if (rest.Length < ReplyHeaderLength)
            {
                throw Lie(source, $"{rest.Length} bytes are left at offset {offset}, too few for a {ReplyHeaderLength}-byte struct virtio_net_stats_reply_hdr");
            }

            byte typeNumber = rest[0];
            int queueIndex = BinaryPrimitives.ReadUInt16LittleEndian(rest[2..]);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(rest[6..]);
            if (size < ReplyHeaderLength)
            {
                throw Lie(source, $"the block at offset {offset} (type {typeNumber}, queue {queueIndex}) has size {size}, smaller than its own header");
            }

            if (size > rest.Length)
            {
                throw Lie(source, $"the block at offset {offset} (type {typeNumber}, queue {queueIndex}) has size {size}, running past the {reply.Length}-byte reply");
            }

            DeviceStatisticsTypes type = typeNumber < 64 ? (DeviceStatisticsTypes)(1UL << typeNumber) : DeviceStatisticsTypes.None;
            if (!Layouts.TryGetValue(type, out string[]? fields))
            {
                // A type a later spec defines: its size says where the next block starts.
                offset += size;
                continue;
            }

            if (size != BlockLength(fields))
            {
                throw Lie(source, $"the {type} block of queue {queueIndex} at offset {offset} has size {size}; the spec's structure has {BlockLength(fields)}");
            }

            if (!requested.TryGetValue(queueIndex, out DeviceStatisticsTypes asked) || (asked & type) == 0)
            {
                throw Lie(source, $"the reply holds a {type} block for queue {queueIndex}, which was not asked for");
            }

            DeviceStatisticsTypes already = seen.GetValueOrDefault(queueIndex);
            if ((already & type) != 0)
            {
                throw Lie(source, $"the reply holds the {type} block of queue {queueIndex} twice");
            }

            seen[queueIndex] = already | type;
            var counters = new DeviceStatisticsCounter[fields.Length];
            for (int i = 0; i < fields.Length; i++)
            {
                counters[i] = new DeviceStatisticsCounter(fields[i], BinaryPrimitives.ReadUInt64LittleEndian(rest[(ReplyHeaderLength + (8 * i))..]));
            }

            blocks.Add(new DeviceStatisticsBlock { Type = type, QueueIndex = queueIndex, Counters = counters });
            offset += size;
        }
    }

    private static int BlockLength(string[] fields) => ReplyHeaderLength + (8 * fields.Length);

    private static VirtioException Lie(string source, string what) =>
        new(VirtioErrorReason.DeviceMisbehaved, $"{source}: malformed VIRTIO_NET_CTRL_STATS_GET reply: {what}.");
}
