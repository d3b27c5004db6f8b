namespace VirtioNet.Net.Control;

/// <summary>
/// The command bytes of each control class, and the ack values, with the spec's names. Ref: virtio v1.2 §5.1.6.5.
/// </summary>
public static class VirtioNetControlCommands
{
    /// <summary>VIRTIO_NET_OK (0): the ack of a command the device carried out.</summary>
    public const byte AckOk = 0;

    /// <summary>VIRTIO_NET_ERR (1): the ack of a command the device refused.</summary>
    public const byte AckErr = 1;

    /// <summary>VIRTIO_NET_CTRL_RX_PROMISC (0), payload u8 on/off.</summary>
    public const byte RxPromisc = 0;

    /// <summary>VIRTIO_NET_CTRL_RX_ALLMULTI (1), payload u8 on/off.</summary>
    public const byte RxAllMulti = 1;

    /// <summary>VIRTIO_NET_CTRL_RX_ALLUNI (2), payload u8 on/off (CTRL_RX_EXTRA).</summary>
    public const byte RxAllUni = 2;

    /// <summary>VIRTIO_NET_CTRL_RX_NOMULTI (3), payload u8 on/off (CTRL_RX_EXTRA).</summary>
    public const byte RxNoMulti = 3;

    /// <summary>VIRTIO_NET_CTRL_RX_NOUNI (4), payload u8 on/off (CTRL_RX_EXTRA).</summary>
    public const byte RxNoUni = 4;

    /// <summary>VIRTIO_NET_CTRL_RX_NOBCAST (5), payload u8 on/off (CTRL_RX_EXTRA).</summary>
    public const byte RxNoBcast = 5;

    /// <summary>VIRTIO_NET_CTRL_MAC_TABLE_SET (0): two <c>virtio_net_ctrl_mac</c> tables (le32 entries, then 6-byte addresses), unicast then multicast.</summary>
    public const byte MacTableSet = 0;

    /// <summary>VIRTIO_NET_CTRL_MAC_ADDR_SET (1): the 6-byte MAC address (CTRL_MAC_ADDR).</summary>
    public const byte MacAddrSet = 1;

    /// <summary>VIRTIO_NET_CTRL_VLAN_ADD (0): le16 VLAN id.</summary>
    public const byte VlanAdd = 0;

    /// <summary>VIRTIO_NET_CTRL_VLAN_DEL (1): le16 VLAN id.</summary>
    public const byte VlanDel = 1;

    /// <summary>VIRTIO_NET_CTRL_ANNOUNCE_ACK (0): no payload.</summary>
    public const byte AnnounceAck = 0;

    /// <summary>VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (0): le16 virtqueue_pairs.</summary>
    public const byte MqVqPairsSet = 0;

    /// <summary>VIRTIO_NET_CTRL_MQ_RSS_CONFIG (1): <c>struct virtio_net_rss_config</c>.</summary>
    public const byte MqRssConfig = 1;

    /// <summary>VIRTIO_NET_CTRL_MQ_HASH_CONFIG (2): <c>struct virtio_net_hash_config</c>.</summary>
    public const byte MqHashConfig = 2;

    /// <summary>VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET (0): le64 offloads (guest feature bits).</summary>
    public const byte GuestOffloadsSet = 0;

    /// <summary>VIRTIO_NET_CTRL_NOTF_COAL_TX_SET (0).</summary>
    public const byte NotfCoalTxSet = 0;

    /// <summary>VIRTIO_NET_CTRL_NOTF_COAL_RX_SET (1).</summary>
    public const byte NotfCoalRxSet = 1;

    /// <summary>VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET (2).</summary>
    public const byte NotfCoalVqSet = 2;

    /// <summary>VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET (3).</summary>
    public const byte NotfCoalVqGet = 3;

    /// <summary>VIRTIO_NET_CTRL_HASH_TUNNEL_SET (0): le32 enabled_tunnel_types (<c>struct virtnet_hash_tunnel</c>).</summary>
    public const byte HashTunnelSet = 0;

    /// <summary>VIRTIO_NET_CTRL_STATS_QUERY (0): no payload; replies <c>struct virtio_net_stats_capabilities</c> (le64).</summary>
    public const byte StatsQuery = 0;

    /// <summary>VIRTIO_NET_CTRL_STATS_GET (1): <c>struct virtio_net_ctrl_queue_stats</c>; replies a sequence of statistics blocks.</summary>
    public const byte StatsGet = 1;

    /// <summary>The spec's name of a command, for messages, e.g. "VIRTIO_NET_CTRL_RX_PROMISC"; unknown ones as numbers.</summary>
    public static string Name(VirtioNetControlClass commandClass, byte command)
    {
        string? name = (commandClass, command) switch
        {
            (VirtioNetControlClass.Rx, RxPromisc) => "VIRTIO_NET_CTRL_RX_PROMISC",
            (VirtioNetControlClass.Rx, RxAllMulti) => "VIRTIO_NET_CTRL_RX_ALLMULTI",
            (VirtioNetControlClass.Rx, RxAllUni) => "VIRTIO_NET_CTRL_RX_ALLUNI",
            (VirtioNetControlClass.Rx, RxNoMulti) => "VIRTIO_NET_CTRL_RX_NOMULTI",
            (VirtioNetControlClass.Rx, RxNoUni) => "VIRTIO_NET_CTRL_RX_NOUNI",
            (VirtioNetControlClass.Rx, RxNoBcast) => "VIRTIO_NET_CTRL_RX_NOBCAST",
            (VirtioNetControlClass.Mac, MacTableSet) => "VIRTIO_NET_CTRL_MAC_TABLE_SET",
            (VirtioNetControlClass.Mac, MacAddrSet) => "VIRTIO_NET_CTRL_MAC_ADDR_SET",
            (VirtioNetControlClass.Vlan, VlanAdd) => "VIRTIO_NET_CTRL_VLAN_ADD",
            (VirtioNetControlClass.Vlan, VlanDel) => "VIRTIO_NET_CTRL_VLAN_DEL",
            (VirtioNetControlClass.Announce, AnnounceAck) => "VIRTIO_NET_CTRL_ANNOUNCE_ACK",
            (VirtioNetControlClass.Mq, MqVqPairsSet) => "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET",
            (VirtioNetControlClass.Mq, MqRssConfig) => "VIRTIO_NET_CTRL_MQ_RSS_CONFIG",
            (VirtioNetControlClass.Mq, MqHashConfig) => "VIRTIO_NET_CTRL_MQ_HASH_CONFIG",
            (VirtioNetControlClass.GuestOffloads, GuestOffloadsSet) => "VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET",
            (VirtioNetControlClass.NotfCoal, NotfCoalTxSet) => "VIRTIO_NET_CTRL_NOTF_COAL_TX_SET",
            (VirtioNetControlClass.NotfCoal, NotfCoalRxSet) => "VIRTIO_NET_CTRL_NOTF_COAL_RX_SET",
            (VirtioNetControlClass.NotfCoal, NotfCoalVqSet) => "VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET",
            (VirtioNetControlClass.NotfCoal, NotfCoalVqGet) => "VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET",
            (VirtioNetControlClass.HashTunnel, HashTunnelSet) => "VIRTIO_NET_CTRL_HASH_TUNNEL_SET",
            (VirtioNetControlClass.Stats, StatsQuery) => "VIRTIO_NET_CTRL_STATS_QUERY",
            (VirtioNetControlClass.Stats, StatsGet) => "VIRTIO_NET_CTRL_STATS_GET",
            _ => null,
        };
        return name ?? $"control class {(byte)commandClass} command {command}";
    }
}
