using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// How one frame is sent: the virtio_net_hdr fields the device gets, and what the driver does in software instead.
/// Made by <see cref="TransmitOffload.Decide"/>. Ref: virtio v1.2 §5.1.6.2.
/// </summary>
public readonly record struct TransmitOffloadDecision
{
    /// <summary>flags: <see cref="VirtioNetHeader.FlagNeedsCsum"/> when the device completes the checksum, 0 otherwise.</summary>
    public byte Flags { get; init; }

    /// <summary>gso_type: the segmentation the device does; <see cref="VirtioNetGsoType.None"/> when it does none.</summary>
    public VirtioNetGsoType GsoType { get; init; }

    /// <summary>gso_size: the payload per segment the device cuts, 0 without GSO.</summary>
    public int GsoSize { get; init; }

    /// <summary>hdr_len: the length of every header up to the payload (exact, as VIRTIO_NET_F_GUEST_HDRLEN asks).</summary>
    public int HdrLen { get; init; }

    /// <summary>csum_start: where the device starts summing (the transport header).</summary>
    public int CsumStart { get; init; }

    /// <summary>csum_offset: where from <see cref="CsumStart"/> the device stores the checksum.</summary>
    public int CsumOffset { get; init; }

    /// <summary>outer_th_offset: the outer UDP header of a UDP-tunnel GSO packet, 0 otherwise (HOST_UDP_TUNNEL_GSO).</summary>
    public int OuterThOffset { get; init; }

    /// <summary>inner_nh_offset: the inner IP header of a UDP-tunnel GSO packet, 0 otherwise (HOST_UDP_TUNNEL_GSO).</summary>
    public int InnerNhOffset { get; init; }

    /// <summary>True when the gso_type carries VIRTIO_NET_HDR_GSO_UDP_TUNNEL_IPV4 or _IPV6.</summary>
    public bool IsUdpTunnelGso => (GsoType & (VirtioNetGsoType.UdpTunnelIPv4 | VirtioNetGsoType.UdpTunnelIPv6)) != 0;

    /// <summary>True when the driver computes the full checksum itself (VIRTIO_NET_F_CSUM not negotiated).</summary>
    public bool ChecksumInSoftware { get; init; }

    /// <summary>
    /// True when the driver cuts the segment itself (the device lacks the HOST_TSO4/TSO6/ECN/USO feature it needs):
    /// see <see cref="SoftwareSegmentation"/>. Each segment then carries the checksum decision above.
    /// </summary>
    public bool SegmentInSoftware { get; init; }

    /// <summary>The segment size software segmentation uses (the request's), 0 when the frame is sent whole.</summary>
    public int SoftwareSegmentSize { get; init; }

    /// <summary>True when the device is asked to complete a partial checksum.</summary>
    public bool NeedsChecksum => (Flags & VirtioNetHeader.FlagNeedsCsum) != 0;

    /// <summary>
    /// Writes the header fields into <paramref name="header"/> (10, 12, 20 or 24 bytes; the rest is zeroed), the tunnel
    /// offsets only for a UDP-tunnel GSO packet in a 24-byte header (§5.1.6.2: the device must not use them otherwise).
    /// </summary>
    public void WriteHeader(Span<byte> header)
    {
        header.Clear();
        header[VirtioNetHeader.FlagsOffset] = Flags;
        header[VirtioNetHeader.GsoTypeOffset] = (byte)GsoType;
        if (GsoType != VirtioNetGsoType.None)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(header[VirtioNetHeader.HdrLenOffset..], (ushort)HdrLen);
            BinaryPrimitives.WriteUInt16LittleEndian(header[VirtioNetHeader.GsoSizeOffset..], (ushort)GsoSize);
        }

        if (NeedsChecksum)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(header[VirtioNetHeader.CsumStartOffset..], (ushort)CsumStart);
            BinaryPrimitives.WriteUInt16LittleEndian(header[VirtioNetHeader.CsumOffsetOffset..], (ushort)CsumOffset);
        }

        if (IsUdpTunnelGso)
        {
            if (header.Length < VirtioNetHeader.UdpTunnelLength)
            {
                throw new ArgumentException("A UDP-tunnel GSO header needs the 24-byte virtio_net_hdr (HOST_UDP_TUNNEL_GSO negotiated).", nameof(header));
            }

            BinaryPrimitives.WriteUInt16LittleEndian(header[VirtioNetHeader.OuterThOffsetOffset..], (ushort)OuterThOffset);
            BinaryPrimitives.WriteUInt16LittleEndian(header[VirtioNetHeader.InnerNhOffsetOffset..], (ushort)InnerNhOffset);
        }
    }
}
