namespace VirtioNet.Net.Offloads;

/// <summary>
/// What the virtio_net_hdr said about a received frame, after the driver checked it: the checksum state and, for a
/// coalesced (GSO) frame larger than the MTU, the segmentation it stands for. Ref: virtio v1.2 §5.1.6.4.
/// </summary>
/// <param name="Checksum">The checksum state (a partial checksum has already been completed in the frame).</param>
/// <param name="GsoType">The gso_type the device reported (<see cref="VirtioNetGsoType.None"/> for an ordinary frame).</param>
/// <param name="GsoSize">gso_size: the segment size the frame was coalesced from, 0 for an ordinary frame.</param>
public readonly record struct ReceivedFrameInfo(ReceivedChecksumState Checksum, VirtioNetGsoType GsoType, int GsoSize)
{
    /// <summary>True for a coalesced frame (gso_type other than NONE): it may be larger than the MTU.</summary>
    public bool IsGso => GsoType != VirtioNetGsoType.None;

    /// <summary>
    /// With VIRTIO_NET_F_RSC_EXT and VIRTIO_NET_HDR_F_RSC_INFO: how many TCP segments the device coalesced into this
    /// frame (csum_start), at least 1; 0 when the device gave no coalescing information. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public int CoalescedSegments { get; init; }

    /// <summary>
    /// With VIRTIO_NET_HDR_F_RSC_INFO: how many duplicated ACKs the device received for the coalesced segments
    /// (csum_offset); 0 otherwise. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public int DuplicateAcks { get; init; }

    /// <summary>
    /// For a UDP-tunnel GSO frame (<see cref="IsUdpTunnel"/>, GUEST_UDP_TUNNEL_GSO): outer_th_offset, the outer UDP
    /// header's offset in the frame, checked against it; 0 otherwise. Ref: virtio v1.4 §5.1.6.4.
    /// </summary>
    public int OuterTransportOffset { get; init; }

    /// <summary>For a UDP-tunnel GSO frame: inner_nh_offset, the inner IP header's offset in the frame, checked against it; 0 otherwise.</summary>
    public int InnerNetworkOffset { get; init; }

    /// <summary>True for a GSO frame carried by a UDP tunnel (gso_type with GSO_UDP_TUNNEL_IPV4 or _IPV6).</summary>
    public bool IsUdpTunnel => (GsoType & (VirtioNetGsoType.UdpTunnelIPv4 | VirtioNetGsoType.UdpTunnelIPv6)) != 0;

    /// <summary>True when the device reported coalescing information (VIRTIO_NET_HDR_F_RSC_INFO).</summary>
    public bool HasCoalescingInfo => CoalescedSegments > 0;

    /// <summary>
    /// With <see cref="ReceivedChecksumState.Partial"/>: where the checksum sum starts (csum_start, or the TCP header for
    /// an RSC_INFO frame), checked to lie inside the IP packet; 0 in every other state. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public int ChecksumStart { get; init; }

    /// <summary>
    /// With <see cref="ReceivedChecksumState.Partial"/>: where from <see cref="ChecksumStart"/> the checksum field lies
    /// (csum_offset: 16 for TCP, 6 for UDP); 0 in every other state.
    /// </summary>
    public int ChecksumOffset { get; init; }
}
