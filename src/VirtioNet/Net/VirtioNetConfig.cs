using VirtioNet.Core;
using VirtioNet.Transports;

namespace VirtioNet.Net;

/// <summary>
/// A consistent snapshot of <c>struct virtio_net_config</c>. Ref: virtio v1.2 §5.1.4 (Device configuration layout).
/// Fields whose feature was not negotiated hold their defaults.
/// </summary>
public sealed record VirtioNetConfig
{
    /// <summary>mac (offset 0, 6 bytes), valid with VIRTIO_NET_F_MAC.</summary>
    public const int MacOffset = 0;

    /// <summary>status (le16, offset 6), valid with VIRTIO_NET_F_STATUS.</summary>
    public const int StatusOffset = 6;

    /// <summary>max_virtqueue_pairs (le16, offset 8), valid with VIRTIO_NET_F_MQ or RSS.</summary>
    public const int MaxVirtqueuePairsOffset = 8;

    /// <summary>mtu (le16, offset 10), valid with VIRTIO_NET_F_MTU.</summary>
    public const int MtuOffset = 10;

    /// <summary>speed (le32, offset 12), valid with VIRTIO_NET_F_SPEED_DUPLEX; in Mbit/s, 0xffffffff unknown.</summary>
    public const int SpeedOffset = 12;

    /// <summary>duplex (u8, offset 16), valid with VIRTIO_NET_F_SPEED_DUPLEX: 0 half, 1 full, 0xff unknown.</summary>
    public const int DuplexOffset = 16;

    /// <summary>rss_max_key_size (u8, offset 17), valid with VIRTIO_NET_F_RSS or VIRTIO_NET_F_HASH_REPORT.</summary>
    public const int RssMaxKeySizeOffset = 17;

    /// <summary>rss_max_indirection_table_length (le16, offset 18), valid with VIRTIO_NET_F_RSS.</summary>
    public const int RssMaxIndirectionTableLengthOffset = 18;

    /// <summary>supported_hash_types (le32, offset 20), valid with VIRTIO_NET_F_RSS or VIRTIO_NET_F_HASH_REPORT.</summary>
    public const int SupportedHashTypesOffset = 20;

    /// <summary>supported_tunnel_types (le32, offset 24), valid with VIRTIO_NET_F_HASH_TUNNEL. Ref: virtio v1.3 §5.1.4.</summary>
    public const int SupportedTunnelTypesOffset = 24;

    /// <summary>VIRTIO_NET_S_LINK_UP (1) in status.</summary>
    public const ushort StatusLinkUp = 1;

    /// <summary>VIRTIO_NET_S_ANNOUNCE (2) in status.</summary>
    public const ushort StatusAnnounce = 2;

    /// <summary>The device's MAC address, or null when VIRTIO_NET_F_MAC was not negotiated.</summary>
    public byte[]? Mac { get; init; }

    /// <summary>The status field; LINK_UP is assumed when VIRTIO_NET_F_STATUS was not negotiated (§5.1.4.2).</summary>
    public ushort Status { get; init; } = StatusLinkUp;

    /// <summary>max_virtqueue_pairs; 1 without MQ.</summary>
    public int MaxVirtqueuePairs { get; init; } = 1;

    /// <summary>The device's maximum MTU, or null without VIRTIO_NET_F_MTU.</summary>
    public int? Mtu { get; init; }

    /// <summary>Speed in Mbit/s, or null when unknown or not negotiated.</summary>
    public uint? SpeedMbps { get; init; }

    /// <summary>True for full duplex, false for half, null when unknown or not negotiated.</summary>
    public bool? FullDuplex { get; init; }

    /// <summary>rss_max_key_size: the longest RSS key the device takes; 0 without RSS or HASH_REPORT.</summary>
    public int RssMaxKeySize { get; init; }

    /// <summary>rss_max_indirection_table_length: the most indirection table entries the device takes; 0 without RSS.</summary>
    public int RssMaxIndirectionTableLength { get; init; }

    /// <summary>supported_hash_types (VIRTIO_NET_HASH_TYPE_* bits); 0 without RSS or HASH_REPORT.</summary>
    public uint SupportedHashTypes { get; init; }

    /// <summary>
    /// supported_tunnel_types (VIRTIO_NET_HASH_TUNNEL_TYPE_* bits) as the device reports it, undocumented bits included;
    /// 0 without VIRTIO_NET_F_HASH_TUNNEL. The driver uses only the documented ones (§5.1.6.4, Inner Header Hash).
    /// </summary>
    public uint SupportedTunnelTypes { get; init; }

    /// <summary>True when the link is up.</summary>
    public bool IsLinkUp => (Status & StatusLinkUp) != 0;

    /// <summary>
    /// Reads the fields the negotiated features make valid, retrying until the configuration generation is stable
    /// (§2.5.1: a multi-field read is consistent only if the generation did not change across it).
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.InvalidConfiguration"/> for values the spec forbids.</exception>
    public static VirtioNetConfig Read(IVirtioTransport transport, ulong negotiated)
    {
        ArgumentNullException.ThrowIfNull(transport);
        for (int attempt = 0; ; attempt++)
        {
            uint before = transport.ReadConfigGeneration();
            VirtioNetConfig config = ReadOnce(transport, negotiated);
            if (transport.ReadConfigGeneration() == before)
            {
                return config.Validate(transport, negotiated);
            }

            if (attempt == 100)
            {
                throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{transport.Description}: the configuration generation kept changing over 100 reads.");
            }
        }
    }

    /// <summary>Reads only the status field (cheap enough for polling the link).</summary>
    public static ushort ReadStatus(IVirtioTransport transport, ulong negotiated)
    {
        ArgumentNullException.ThrowIfNull(transport);
        return (negotiated & VirtioNetFeatures.Status) != 0 ? transport.ReadConfig16(StatusOffset) : StatusLinkUp;
    }

    /// <summary>
    /// speed (Mbit/s, VIRTIO_NET_SPEED_UNKNOWN = 0xffffffff read as null) and duplex (0 half, 1 full, anything else
    /// unknown) with VIRTIO_NET_F_SPEED_DUPLEX; both null without it. The device may change them with a configuration
    /// change notification. Ref: virtio v1.2 §5.1.4, §5.1.4.2.
    /// </summary>
    internal static (uint? SpeedMbps, bool? FullDuplex) ReadSpeedDuplex(IVirtioTransport t, ulong f)
    {
        if ((f & VirtioNetFeatures.SpeedDuplex) == 0)
        {
            return (null, null);
        }

        uint s = t.ReadConfig32(SpeedOffset);
        byte d = t.ReadConfig8(DuplexOffset);
        return (s == uint.MaxValue ? null : s, d switch { 0 => false, 1 => true, _ => null });
    }

    private static VirtioNetConfig ReadOnce(IVirtioTransport t, ulong f)
    {
        byte[]? mac = null;
        if ((f & VirtioNetFeatures.Mac) != 0)
        {
            mac = new byte[EthernetFrame.AddressLength];
            for (int i = 0; i < mac.Length; i++)
            {
                mac[i] = t.ReadConfig8(MacOffset + i);
            }
        }

        (uint? speed, bool? duplex) = ReadSpeedDuplex(t, f);

        bool hashing = (f & (VirtioNetFeatures.Rss | VirtioNetFeatures.HashReport)) != 0;
        return new VirtioNetConfig
        {
            RssMaxKeySize = hashing ? t.ReadConfig8(RssMaxKeySizeOffset) : 0,
            RssMaxIndirectionTableLength = (f & VirtioNetFeatures.Rss) != 0 ? t.ReadConfig16(RssMaxIndirectionTableLengthOffset) : 0,
            SupportedHashTypes = hashing ? t.ReadConfig32(SupportedHashTypesOffset) : 0,
            SupportedTunnelTypes = (f & VirtioNetFeatures.HashTunnel) != 0 ? t.ReadConfig32(SupportedTunnelTypesOffset) : 0,
            Mac = mac,
            Status = ReadStatus(t, f),
            MaxVirtqueuePairs = (f & (VirtioNetFeatures.Mq | VirtioNetFeatures.Rss)) != 0 ? t.ReadConfig16(MaxVirtqueuePairsOffset) : 1,
            Mtu = (f & VirtioNetFeatures.Mtu) != 0 ? t.ReadConfig16(MtuOffset) : null,
            SpeedMbps = speed,
            FullDuplex = duplex,
        };
    }

    private VirtioNetConfig Validate(IVirtioTransport t, ulong f)
    {
        // §5.1.4.1: max_virtqueue_pairs is 1 to 0x8000 when MQ or RSS is offered.
        if (MaxVirtqueuePairs is < 1 or > 0x8000)
        {
            throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{t.Description}: max_virtqueue_pairs is {MaxVirtqueuePairs}; the spec allows 1 to 32768.");
        }

        // §5.1.4.1: the device MUST set mtu to between 68 and 65535 when VIRTIO_NET_F_MTU is offered.
        if (Mtu is { } mtu && mtu < EthernetFrame.MinimumMtu)
        {
            throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{t.Description}: the device reports an MTU of {mtu}; the spec requires 68 to 65535.");
        }

        // §5.1.4.1: with RSS the device sets rss_max_key_size to at least 40 and the table length to at least 128;
        // a smaller value is taken as the device's real limit, but a table length that is not a power of two cannot
        // be used at all (the mask is length - 1, §5.1.6.5.7.1).
        if ((f & VirtioNetFeatures.Rss) != 0 && (RssMaxIndirectionTableLength == 0 || (RssMaxIndirectionTableLength & (RssMaxIndirectionTableLength - 1)) != 0))
        {
            throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{t.Description}: rss_max_indirection_table_length is {RssMaxIndirectionTableLength}; it must be a power of two.");
        }

        return this;
    }
}
