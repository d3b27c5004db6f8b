using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>
/// Feature bits of the network device. Ref: virtio v1.2 §5.1.3 (v1.3 §5.1.3 for bits 50 to 52, v1.4 for 64 to 70).
/// Each constant below 64 is the bit's mask in the 64-bit feature word; bits 64 and above are <see cref="VirtioFeatureSet"/>s.
/// </summary>
public static class VirtioNetFeatures
{
    /// <summary>VIRTIO_NET_F_CSUM (0): the device handles packets with partial checksum (transmit checksum offload).</summary>
    public const ulong Csum = 1UL << 0;

    /// <summary>VIRTIO_NET_F_GUEST_CSUM (1): the driver handles packets with partial checksum (receive checksum).</summary>
    public const ulong GuestCsum = 1UL << 1;

    /// <summary>VIRTIO_NET_F_CTRL_GUEST_OFFLOADS (2): guest offloads can be changed through the control queue.</summary>
    public const ulong CtrlGuestOffloads = 1UL << 2;

    /// <summary>VIRTIO_NET_F_MTU (3): the device reports its maximum MTU in config space.</summary>
    public const ulong Mtu = 1UL << 3;

    /// <summary>VIRTIO_NET_F_MAC (5): the device has a MAC address in config space.</summary>
    public const ulong Mac = 1UL << 5;

    /// <summary>VIRTIO_NET_F_GSO (6), legacy: the device handles packets with any GSO type.</summary>
    public const ulong Gso = 1UL << 6;

    /// <summary>VIRTIO_NET_F_GUEST_TSO4 (7): the driver can receive TSOv4.</summary>
    public const ulong GuestTso4 = 1UL << 7;

    /// <summary>VIRTIO_NET_F_GUEST_TSO6 (8): the driver can receive TSOv6.</summary>
    public const ulong GuestTso6 = 1UL << 8;

    /// <summary>VIRTIO_NET_F_GUEST_ECN (9): the driver can receive TSO with ECN.</summary>
    public const ulong GuestEcn = 1UL << 9;

    /// <summary>VIRTIO_NET_F_GUEST_UFO (10): the driver can receive UFO.</summary>
    public const ulong GuestUfo = 1UL << 10;

    /// <summary>VIRTIO_NET_F_HOST_TSO4 (11): the device can receive (segment) TSOv4.</summary>
    public const ulong HostTso4 = 1UL << 11;

    /// <summary>VIRTIO_NET_F_HOST_TSO6 (12): the device can receive (segment) TSOv6.</summary>
    public const ulong HostTso6 = 1UL << 12;

    /// <summary>VIRTIO_NET_F_HOST_ECN (13): the device can receive TSO with ECN.</summary>
    public const ulong HostEcn = 1UL << 13;

    /// <summary>VIRTIO_NET_F_HOST_UFO (14): the device can receive UFO.</summary>
    public const ulong HostUfo = 1UL << 14;

    /// <summary>VIRTIO_NET_F_MRG_RXBUF (15): the driver can merge receive buffers.</summary>
    public const ulong MrgRxBuf = 1UL << 15;

    /// <summary>VIRTIO_NET_F_STATUS (16): the configuration status field is available.</summary>
    public const ulong Status = 1UL << 16;

    /// <summary>VIRTIO_NET_F_CTRL_VQ (17): the control channel is available.</summary>
    public const ulong CtrlVq = 1UL << 17;

    /// <summary>VIRTIO_NET_F_CTRL_RX (18): control channel receive-mode support.</summary>
    public const ulong CtrlRx = 1UL << 18;

    /// <summary>VIRTIO_NET_F_CTRL_VLAN (19): control channel VLAN filtering.</summary>
    public const ulong CtrlVlan = 1UL << 19;

    /// <summary>VIRTIO_NET_F_CTRL_RX_EXTRA (20): control channel extra receive modes (all-unicast, no-multicast, ...).</summary>
    public const ulong CtrlRxExtra = 1UL << 20;

    /// <summary>VIRTIO_NET_F_GUEST_ANNOUNCE (21): the driver can send gratuitous packets on request.</summary>
    public const ulong GuestAnnounce = 1UL << 21;

    /// <summary>VIRTIO_NET_F_MQ (22): multiqueue with automatic receive steering.</summary>
    public const ulong Mq = 1UL << 22;

    /// <summary>VIRTIO_NET_F_CTRL_MAC_ADDR (23): the MAC address can be set through the control channel.</summary>
    public const ulong CtrlMacAddr = 1UL << 23;

    // Bits 46 to 49 are not network bits: the spec reserves them for future extensions (virtio v1.3 §2.2). An early draft
    // put the UDP tunnel GSO bits there; the spec moved them to 65-68 (oasis-tcs/virtio-spec 14d3f88, "avoid using
    // reserved feature bits", 2025), where Linux defines them too, beyond the 64 bits this driver negotiates.

    /// <summary>VIRTIO_NET_F_DEVICE_STATS (50): the device reports statistics through the control queue. Ref: virtio v1.3.</summary>
    public const ulong DeviceStats = 1UL << 50;

    /// <summary>VIRTIO_NET_F_HASH_TUNNEL (51): the device can hash on inner headers of tunnels. Ref: virtio v1.3.</summary>
    public const ulong HashTunnel = 1UL << 51;

    /// <summary>VIRTIO_NET_F_VQ_NOTF_COAL (52): per-queue notification coalescing.</summary>
    public const ulong VqNotfCoal = 1UL << 52;

    /// <summary>VIRTIO_NET_F_NOTF_COAL (53): device-wide notification coalescing.</summary>
    public const ulong NotfCoal = 1UL << 53;

    /// <summary>VIRTIO_NET_F_GUEST_USO4 (54): the driver can receive USOv4.</summary>
    public const ulong GuestUso4 = 1UL << 54;

    /// <summary>VIRTIO_NET_F_GUEST_USO6 (55): the driver can receive USOv6.</summary>
    public const ulong GuestUso6 = 1UL << 55;

    /// <summary>VIRTIO_NET_F_HOST_USO (56): the device can segment USO.</summary>
    public const ulong HostUso = 1UL << 56;

    /// <summary>VIRTIO_NET_F_HASH_REPORT (57): the device reports a hash beside each received packet.</summary>
    public const ulong HashReport = 1UL << 57;

    /// <summary>VIRTIO_NET_F_GUEST_HDRLEN (59): the driver provides the exact hdr_len on transmit.</summary>
    public const ulong GuestHdrLen = 1UL << 59;

    /// <summary>VIRTIO_NET_F_RSS (60): receive-side scaling.</summary>
    public const ulong Rss = 1UL << 60;

    /// <summary>VIRTIO_NET_F_RSC_EXT (61): extended receive-segment-coalescing information.</summary>
    public const ulong RscExt = 1UL << 61;

    /// <summary>VIRTIO_NET_F_STANDBY (62): the device may act as a standby for a primary device with the same MAC.</summary>
    public const ulong Standby = 1UL << 62;

    /// <summary>VIRTIO_NET_F_SPEED_DUPLEX (63): the device reports speed and duplex.</summary>
    public const ulong SpeedDuplex = 1UL << 63;

    // Bits 64 and above live in feature words 2 and 3: sets, not ulong masks. Ref: virtio v1.4 §5.1.3.

    /// <summary>VIRTIO_NET_F_RSS_CONTEXT (64): the device supports several RSS contexts.</summary>
    public static readonly VirtioFeatureSet RssContext = VirtioFeatureSet.FromBit(64);

    /// <summary>VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO (65): the driver can receive GSO packets carried by a UDP tunnel.</summary>
    public static readonly VirtioFeatureSet GuestUdpTunnelGso = VirtioFeatureSet.FromBit(65);

    /// <summary>VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM (66): the driver handles UDP-tunnel GSO packets with a partial outer UDP checksum.</summary>
    public static readonly VirtioFeatureSet GuestUdpTunnelGsoCsum = VirtioFeatureSet.FromBit(66);

    /// <summary>VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67): the device can segment GSO packets carried by a UDP tunnel.</summary>
    public static readonly VirtioFeatureSet HostUdpTunnelGso = VirtioFeatureSet.FromBit(67);

    /// <summary>VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM (68): the device completes a partial outer UDP checksum of UDP-tunnel GSO packets.</summary>
    public static readonly VirtioFeatureSet HostUdpTunnelGsoCsum = VirtioFeatureSet.FromBit(68);

    /// <summary>
    /// GUEST_UDP_TUNNEL_GSO's bit (46) in the le64 offloads bitmap of VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, which has no
    /// room for feature 65: a command bit, not a feature bit (46 is a reserved feature). Ref: virtio v1.4 §5.1.6.5.6.1.
    /// </summary>
    public const ulong GuestUdpTunnelGsoOffload = 1UL << 46;

    /// <summary>GUEST_UDP_TUNNEL_GSO_CSUM's bit (47) in the VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET bitmap (not a feature bit).</summary>
    public const ulong GuestUdpTunnelGsoCsumOffload = 1UL << 47;

    /// <summary>VIRTIO_NET_F_OUT_NET_HEADER (69): the driver can give the outer network header's offset (outer_nh_offset).</summary>
    public static readonly VirtioFeatureSet OutNetHeader = VirtioFeatureSet.FromBit(69);

    /// <summary>VIRTIO_NET_F_IPSEC (70): the device supports inline IPsec processing.</summary>
    public static readonly VirtioFeatureSet Ipsec = VirtioFeatureSet.FromBit(70);
}
