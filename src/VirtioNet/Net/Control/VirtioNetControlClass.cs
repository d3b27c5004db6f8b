namespace VirtioNet.Net.Control;

/// <summary>The class byte of a control command (<c>struct virtio_net_ctrl_hdr</c>). Ref: virtio v1.2 §5.1.6.5.</summary>
public enum VirtioNetControlClass : byte
{
    /// <summary>VIRTIO_NET_CTRL_RX (0): receive modes (VIRTIO_NET_F_CTRL_RX, CTRL_RX_EXTRA). §5.1.6.5.1.</summary>
    Rx = 0,

    /// <summary>VIRTIO_NET_CTRL_MAC (1): MAC filter table and MAC address (CTRL_RX, CTRL_MAC_ADDR). §5.1.6.5.2.</summary>
    Mac = 1,

    /// <summary>VIRTIO_NET_CTRL_VLAN (2): VLAN filter table (CTRL_VLAN). §5.1.6.5.3.</summary>
    Vlan = 2,

    /// <summary>VIRTIO_NET_CTRL_ANNOUNCE (3): announcement acknowledgement (GUEST_ANNOUNCE). §5.1.6.5.4.</summary>
    Announce = 3,

    /// <summary>VIRTIO_NET_CTRL_MQ (4): queue pairs, RSS and hash configuration (MQ, RSS, HASH_REPORT). §5.1.6.5.5.</summary>
    Mq = 4,

    /// <summary>VIRTIO_NET_CTRL_GUEST_OFFLOADS (5): guest offloads (CTRL_GUEST_OFFLOADS). §5.1.6.5.6.</summary>
    GuestOffloads = 5,

    /// <summary>VIRTIO_NET_CTRL_NOTF_COAL (6): notification coalescing (NOTF_COAL, VQ_NOTF_COAL). §5.1.6.5.9.</summary>
    NotfCoal = 6,

    /// <summary>VIRTIO_NET_CTRL_HASH_TUNNEL (7): inner header hash of tunnels (HASH_TUNNEL). Ref: virtio v1.3 §5.1.6.4 (Inner Header Hash).</summary>
    HashTunnel = 7,

    /// <summary>VIRTIO_NET_CTRL_STATS (8): device statistics (DEVICE_STATS). Ref: virtio v1.3 §5.1.6.5.11.</summary>
    Stats = 8,
}
