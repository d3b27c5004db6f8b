namespace VirtioNet.Net.Filtering;

/// <summary>
/// The receive modes of the VIRTIO_NET_CTRL_RX class, one flag per command (the flag's bit number is the command number).
/// Promiscuous and AllMulticast need VIRTIO_NET_F_CTRL_RX; the others VIRTIO_NET_F_CTRL_RX_EXTRA. Ref: virtio v1.2 §5.1.6.5.1.
/// </summary>
[Flags]
public enum ReceiveFilterFlags
{
    /// <summary>Filter by the MAC address and the MAC table; accept broadcast.</summary>
    None = 0,

    /// <summary>VIRTIO_NET_CTRL_RX_PROMISC (0): accept every frame, whatever its destination or VLAN.</summary>
    Promiscuous = 1 << 0,

    /// <summary>VIRTIO_NET_CTRL_RX_ALLMULTI (1): accept every multicast frame.</summary>
    AllMulticast = 1 << 1,

    /// <summary>VIRTIO_NET_CTRL_RX_ALLUNI (2): accept every unicast frame.</summary>
    AllUnicast = 1 << 2,

    /// <summary>VIRTIO_NET_CTRL_RX_NOMULTI (3): drop every multicast frame (broadcast excepted).</summary>
    NoMulticast = 1 << 3,

    /// <summary>VIRTIO_NET_CTRL_RX_NOUNI (4): drop every unicast frame.</summary>
    NoUnicast = 1 << 4,

    /// <summary>VIRTIO_NET_CTRL_RX_NOBCAST (5): drop broadcast frames.</summary>
    NoBroadcast = 1 << 5,
}
