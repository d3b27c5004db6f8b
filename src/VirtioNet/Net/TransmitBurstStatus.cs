namespace VirtioNet.Net;

/// <summary>
/// Why <see cref="VirtioNetQueuePair.TransmitBurst"/>
/// stopped: the packets from the returned count on are still the caller's.
/// </summary>
public enum TransmitBurstStatus
{
    /// <summary>Every packet was queued.</summary>
    Complete,

    /// <summary>The ring is full (back-pressure): send the rest after <see cref="VirtioNetQueuePair.Reclaim"/> frees room.</summary>
    RingFull,

    /// <summary>
    /// The packet at the returned count asks for segmentation the device cannot do (HOST_TSO4, HOST_TSO6, HOST_USO, or
    /// HOST_ECN for a CWR segment, not negotiated). The burst API does not segment in software: that needs the frame cut
    /// into other buffers, a copy. Send it with
    /// <see cref="VirtioNetQueuePair.TrySend"/>, which does, or
    /// as MTU-sized frames; then free or reuse the buffer. A missing checksum offload (VIRTIO_NET_F_CSUM) never stops a
    /// burst: the driver computes the checksum in place, in the buffer the caller filled.
    /// </summary>
    OffloadUnavailable,

    /// <summary>
    /// The pair's rate limit (<see cref="VirtioNetQueuePair.RateLimit"/>) has too few tokens for the packet at the
    /// returned count: send the rest after <see cref="FlowControl.TokenBucket.TimeUntilAvailable"/>.
    /// </summary>
    RateLimited,
}
