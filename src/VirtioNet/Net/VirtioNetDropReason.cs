namespace VirtioNet.Net;

/// <summary>Why the driver dropped a frame; <see cref="VirtioNetQueueStatistics.GetDrops"/> counts each apart.</summary>
public enum VirtioNetDropReason
{
    /// <summary>Receive: a packet spread over more buffers than the caller's whole span holds (burst API), which could never be handed out.</summary>
    CallerSpanTooShort,

    /// <summary>Transmit: a frame in the device's hands when it failed and was reset (recovery); it may or may not have left.</summary>
    InFlightAtRecovery,

    /// <summary>Transmit: a software segment the ring refused although room for every segment was counted first (a device that lies about its ring).</summary>
    SegmentNotQueued,
}
