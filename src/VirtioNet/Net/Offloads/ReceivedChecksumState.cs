namespace VirtioNet.Net.Offloads;

/// <summary>What is known about the transport checksum of a received frame. Ref: virtio v1.2 §5.1.6.4.</summary>
public enum ReceivedChecksumState
{
    /// <summary>The device said nothing (flags 0): the checksum is in the frame, unchecked; the stack checks it as usual.</summary>
    None,

    /// <summary>
    /// VIRTIO_NET_HDR_F_DATA_VALID, and the driver was told not to verify it (<see cref="VirtioNetOptions.VerifyReceivedChecksums"/> off):
    /// the device's word only.
    /// </summary>
    DeviceValidated,

    /// <summary>VIRTIO_NET_HDR_F_DATA_VALID, and the driver recomputed the TCP/UDP checksum and found it right.</summary>
    Verified,

    /// <summary>
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the packet came with a partial checksum (a local sender, or a GSO packet) and the
    /// driver completed it in the frame, which now carries a correct checksum.
    /// </summary>
    Completed,

    /// <summary>VIRTIO_NET_HDR_F_DATA_VALID, but the driver recomputed the checksum and it is wrong: the device lied.</summary>
    Invalid,

    /// <summary>
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM, left as the device wrote it: the checksum field holds only the pseudo-header sum,
    /// and <see cref="ReceivedFrameInfo.ChecksumStart"/> and <see cref="ReceivedFrameInfo.ChecksumOffset"/> say where to
    /// complete it (checked to lie inside the packet). Only the zero-copy burst API reports this, when the caller did not
    /// ask the driver to complete it (DPDK's RX_L4_CKSUM_NONE: the data is sound, the field is not yet the checksum).
    /// </summary>
    Partial,
}
