namespace VirtioNet.Net;

/// <summary>Link-layer sizes the driver needs (IEEE 802.3, 802.1Q).</summary>
public static class EthernetFrame
{
    /// <summary>Destination, source and EtherType: 14 bytes.</summary>
    public const int HeaderLength = 14;

    /// <summary>One 802.1Q tag: 4 bytes.</summary>
    public const int VlanTagLength = 4;

    /// <summary>The standard Ethernet MTU.</summary>
    public const int DefaultMtu = 1500;

    /// <summary>The smallest MTU an IPv4 host must support (RFC 791), the floor for VIRTIO_NET_F_MTU values.</summary>
    public const int MinimumMtu = 68;

    /// <summary>
    /// The largest frame a GSO packet can form: 64 KiB of IP plus the link-layer headers. IPv6's payload length leaves
    /// out its 40-byte header, so an IPv6 packet reaches 65535 + 40 bytes (QEMU's receive coalescing builds such frames).
    /// </summary>
    public const int MaxGsoFrameLength = 65535 + 40 + HeaderLength + VlanTagLength;

    /// <summary>The length of a MAC address.</summary>
    public const int AddressLength = 6;
}
