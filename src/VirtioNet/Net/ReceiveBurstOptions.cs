namespace VirtioNet.Net;

/// <summary>
/// What <see cref="VirtioNetQueuePair.ReceiveBurst"/> does beyond checking
/// headers, which it always does. Both options read every payload byte, which the burst API otherwise never touches.
/// </summary>
[Flags]
public enum ReceiveBurstOptions
{
    /// <summary>
    /// Check headers only: a partial checksum is reported <see cref="Offloads.ReceivedChecksumState.Partial"/> with
    /// where, and DATA_VALID <see cref="Offloads.ReceivedChecksumState.DeviceValidated"/> (DPDK's default too).
    /// </summary>
    None = 0,

    /// <summary>
    /// Complete VIRTIO_NET_HDR_F_NEEDS_CSUM checksums in the receive buffers (across every segment of a multi-buffer
    /// packet), reported <see cref="Offloads.ReceivedChecksumState.Completed"/>, as the copying path does.
    /// </summary>
    CompletePartialChecksums = 1,

    /// <summary>
    /// Recompute DATA_VALID checksums (across every segment), reported <see cref="Offloads.ReceivedChecksumState.Verified"/>
    /// or <see cref="Offloads.ReceivedChecksumState.Invalid"/>, as the copying path does with
    /// <see cref="VirtioNetOptions.VerifyReceivedChecksums"/>.
    /// </summary>
    VerifyDataValid = 2,
}
