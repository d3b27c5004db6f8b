using VirtioNet.Net.Offloads;

namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// What a VIRTIO_NET_CTRL_MQ_RSS_CONFIG command sets: the hash types, the Toeplitz key, the indirection table (hash &amp;
/// mask → 0-based receive queue, 0 being receiveq1) and the queue for packets no hash type covers. Immutable; checked
/// against a device's limits by <see cref="Validate"/> before it is sent. Ref: virtio v1.2 §5.1.6.5.7.1.
/// </summary>
public sealed record RssConfiguration
{
    private readonly byte[] _key = ToeplitzHash.DefaultKey.ToArray();
    private readonly ushort[] _indirectionTable = [0];

    /// <summary>The fields hashed. Default TCP and UDP over IPv4 and IPv6, and the plain IP types for other protocols.</summary>
    public RssHashTypes HashTypes { get; init; } =
        RssHashTypes.Ipv4 | RssHashTypes.TcpIpv4 | RssHashTypes.UdpIpv4 | RssHashTypes.Ipv6 | RssHashTypes.TcpIpv6 | RssHashTypes.UdpIpv6;

    /// <summary>The Toeplitz key. Default the 40-byte key of Microsoft's RSS verification suite (<see cref="ToeplitzHash.DefaultKey"/>).</summary>
    public ReadOnlyMemory<byte> Key
    {
        get => _key;
        init => _key = value.ToArray();
    }

    /// <summary>The indirection table: entry i is the 0-based receive queue of hashes with (hash &amp; (length - 1)) == i.</summary>
    public ReadOnlyMemory<ushort> IndirectionTable
    {
        get => _indirectionTable;
        init => _indirectionTable = value.ToArray();
    }

    /// <summary>unclassified_queue: the 0-based receive queue of packets no enabled hash type applies to. Default 0 (receiveq1).</summary>
    public int UnclassifiedQueue { get; init; }

    /// <summary>
    /// A table of <paramref name="tableLength"/> entries spreading hashes round-robin over <paramref name="queuePairs"/>
    /// receive queues (entry i → i mod queuePairs), as ethtool's default <c>-X equal N</c> does.
    /// </summary>
    public static RssConfiguration Spread(int queuePairs, int tableLength, RssHashTypes? hashTypes = null, ReadOnlyMemory<byte>? key = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queuePairs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tableLength, 1);
        ushort[] table = new ushort[tableLength];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = (ushort)(i % queuePairs);
        }

        var configuration = new RssConfiguration { IndirectionTable = table };
        if (hashTypes is { } types)
        {
            configuration = configuration with { HashTypes = types };
        }

        return key is { } k ? configuration with { Key = k } : configuration;
    }

    /// <summary>The receive queue (0-based) the table sends <paramref name="hash"/> to.</summary>
    public int QueueFor(uint hash) => _indirectionTable[(int)(hash & (uint)(_indirectionTable.Length - 1))];

    /// <summary>
    /// Checks the configuration against a device: hash types within <c>supported_hash_types</c>, a key no longer than
    /// <c>rss_max_key_size</c> (and non-empty when hashing), a table whose length is a power of two no longer than
    /// <c>rss_max_indirection_table_length</c>, and every queue below <paramref name="queuePairs"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Says which limit is broken, by how much.</exception>
    public void Validate(VirtioNetConfig config, int queuePairs)
    {
        ArgumentNullException.ThrowIfNull(config);
        int length = _indirectionTable.Length;
        if (length == 0 || (length & (length - 1)) != 0)
        {
            throw new ArgumentException($"The RSS indirection table has {length} entries; its length must be a power of two (the device masks the hash with length - 1).");
        }

        if (length > config.RssMaxIndirectionTableLength)
        {
            throw new ArgumentException($"The RSS indirection table has {length} entries; the device takes at most {config.RssMaxIndirectionTableLength} (rss_max_indirection_table_length).");
        }

        var unsupported = (RssHashTypes)((uint)HashTypes & ~config.SupportedHashTypes);
        if (unsupported != RssHashTypes.None)
        {
            throw new ArgumentException($"The device does not support the hash types {unsupported} (supported_hash_types is {(RssHashTypes)config.SupportedHashTypes}).");
        }

        if (_key.Length > config.RssMaxKeySize || _key.Length > ToeplitzHash.MaxKeyLength)
        {
            throw new ArgumentException($"The RSS key has {_key.Length} bytes; the device takes at most {Math.Min(config.RssMaxKeySize, ToeplitzHash.MaxKeyLength)} (rss_max_key_size).");
        }

        if (_key.Length == 0 && HashTypes != RssHashTypes.None)
        {
            throw new ArgumentException("The RSS key is empty, but hash types are enabled: a hash needs a key.");
        }

        for (int i = 0; i < length; i++)
        {
            if (_indirectionTable[i] >= queuePairs)
            {
                throw new ArgumentException($"RSS indirection table entry {i} names receive queue {_indirectionTable[i]}, but only {queuePairs} queue pairs exist (0 to {queuePairs - 1}).");
            }
        }

        if (UnclassifiedQueue < 0 || UnclassifiedQueue >= queuePairs)
        {
            throw new ArgumentException($"The unclassified queue is {UnclassifiedQueue}; only {queuePairs} queue pairs exist (0 to {queuePairs - 1}).");
        }
    }

    /// <inheritdoc/>
    public bool Equals(RssConfiguration? other) =>
        other is not null && HashTypes == other.HashTypes && UnclassifiedQueue == other.UnclassifiedQueue
        && _key.AsSpan().SequenceEqual(other._key) && _indirectionTable.AsSpan().SequenceEqual(other._indirectionTable);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(HashTypes, UnclassifiedQueue, _key.Length, _indirectionTable.Length);
}
