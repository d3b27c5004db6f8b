namespace VirtioNet.Net;

/// <summary>
/// The <c>struct virtio_net_hdr</c> that precedes every packet in both directions: field offsets, flag values and
/// its length under each feature set. Ref: virtio v1.2 §5.1.6 (Device Operation).
/// </summary>
public static class VirtioNetHeader
{
    /// <summary>flags (u8, offset 0).</summary>
    public const int FlagsOffset = 0;

    /// <summary>gso_type (u8, offset 1).</summary>
    public const int GsoTypeOffset = 1;

    /// <summary>hdr_len (le16, offset 2).</summary>
    public const int HdrLenOffset = 2;

    /// <summary>gso_size (le16, offset 4).</summary>
    public const int GsoSizeOffset = 4;

    /// <summary>csum_start (le16, offset 6).</summary>
    public const int CsumStartOffset = 6;

    /// <summary>csum_offset (le16, offset 8).</summary>
    public const int CsumOffsetOffset = 8;

    /// <summary>num_buffers (le16, offset 10): how many buffers a mergeable packet spans.</summary>
    public const int NumBuffersOffset = 10;

    /// <summary>VIRTIO_NET_HDR_F_NEEDS_CSUM (1): the checksum at csum_start + csum_offset is partial.</summary>
    public const byte FlagNeedsCsum = 1;

    /// <summary>VIRTIO_NET_HDR_F_DATA_VALID (2): the device has validated the checksum.</summary>
    public const byte FlagDataValid = 2;

    /// <summary>VIRTIO_NET_HDR_F_RSC_INFO (4): csum fields hold coalescing information.</summary>
    public const byte FlagRscInfo = 4;

    /// <summary>
    /// VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM (8): on transmit, the device completes the outer UDP checksum of a UDP-tunnel GSO
    /// packet (HOST_UDP_TUNNEL_GSO_CSUM); on receive, the outer UDP checksum was validated and holds the pseudo-header
    /// sum (GUEST_UDP_TUNNEL_GSO_CSUM). Ref: virtio v1.4 §5.1.6.2, §5.1.6.4.
    /// </summary>
    public const byte FlagUdpTunnelCsum = 8;

    /// <summary>outer_th_offset (le16, offset 20): the outer UDP header's offset, with HOST/GUEST_UDP_TUNNEL_GSO.</summary>
    public const int OuterThOffsetOffset = 20;

    /// <summary>inner_nh_offset (le16, offset 22): the inner network header's offset, with HOST/GUEST_UDP_TUNNEL_GSO.</summary>
    public const int InnerNhOffsetOffset = 22;

    /// <summary>VIRTIO_NET_HDR_GSO_NONE (0).</summary>
    public const byte GsoNone = 0;

    /// <summary>The legacy header without num_buffers (10 bytes). Ref: virtio v1.2 §5.1.6.1 (Legacy Interface).</summary>
    public const int LegacyLength = 10;

    /// <summary>The header with num_buffers (12 bytes): with VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF.</summary>
    public const int Length = 12;

    /// <summary>The header with hash_value, hash_report and padding (20 bytes): with VIRTIO_NET_F_HASH_REPORT.</summary>
    public const int HashReportLength = 20;

    /// <summary>
    /// The header up to inner_nh_offset (24 bytes): with VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO or GUEST_UDP_TUNNEL_GSO, the
    /// hash fields included whether or not HASH_REPORT is negotiated (§5.1.6.3.1: "24 bytes if ... UDP_TUNNEL_GSO").
    /// </summary>
    public const int UdpTunnelLength = 24;

    /// <summary>
    /// The header length for all 128 negotiated bits: <see cref="UdpTunnelLength"/> with HOST_UDP_TUNNEL_GSO or
    /// GUEST_UDP_TUNNEL_GSO, otherwise as <see cref="LengthFor(ulong)"/>. Ref: virtio v1.4 §5.1.6.3.1.
    /// </summary>
    public static int LengthFor(Core.VirtioFeatureSet negotiated) =>
        negotiated.ContainsAny(VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.GuestUdpTunnelGso) ? UdpTunnelLength : LengthFor(negotiated.Low);

    /// <summary>
    /// The header length for a negotiated feature set: 12 bytes once VERSION_1 or MRG_RXBUF is negotiated (§5.1.6:
    /// num_buffers is always present for modern devices), 20 with HASH_REPORT, and the 10-byte legacy form otherwise.
    /// </summary>
    public static int LengthFor(ulong negotiated)
    {
        if ((negotiated & VirtioNetFeatures.HashReport) != 0)
        {
            return HashReportLength;
        }

        return (negotiated & (Core.VirtioFeatures.Version1 | VirtioNetFeatures.MrgRxBuf)) != 0 ? Length : LegacyLength;
    }
}
