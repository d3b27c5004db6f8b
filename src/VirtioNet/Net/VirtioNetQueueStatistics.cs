namespace VirtioNet.Net;

/// <summary>
/// Counters of one queue. Written only by the worker that owns the queue, readable from any thread at any time
/// (64-bit reads and writes are atomic on the 64-bit platforms .NET supports; values may be a moment stale).
/// </summary>
public sealed class VirtioNetQueueStatistics
{
    private long _packets;
    private long _bytes;
    private long _drops;
    private long _errors;
    private long _notifications;
    private long _interrupts;
    private long _coalescedSegments;
    private long _transmitTimeouts;
    private long _ringFull;
    private long _checksumsByDevice;
    private long _checksumsByDriver;
    private long _segmentationByDevice;
    private long _segmentationByDriver;

    // Drops by VirtioNetDropReason; their sum is _drops.
    private readonly long[] _dropsByReason = new long[Enum.GetValues<VirtioNetDropReason>().Length];

    /// <summary>Creates counters for a queue.</summary>
    public VirtioNetQueueStatistics(string name) => Name = name;

    /// <summary>The queue's spec name, e.g. "receiveq1".</summary>
    public string Name { get; }

    /// <summary>Frames delivered (receive) or handed to the device (transmit).</summary>
    public long Packets => Volatile.Read(ref _packets);

    /// <summary>Bytes of those frames, without the virtio_net_hdr.</summary>
    public long Bytes => Volatile.Read(ref _bytes);

    /// <summary>Frames dropped by the driver, for the reasons <see cref="GetDrops"/> counts apart.</summary>
    public long Drops => Volatile.Read(ref _drops);

    /// <summary>Frames the device returned malformed (lengths below the header, bad num_buffers, runts); dropped and counted here.</summary>
    public long Errors => Volatile.Read(ref _errors);

    /// <summary>Available-buffer notifications sent to the device (kicks).</summary>
    public long Notifications => Volatile.Read(ref _notifications);

    /// <summary>
    /// Used-buffer interrupts that woke this queue's waiter with frames to take: on a line shared by several queues, the
    /// interrupts after which the driver found this queue's used ring had moved (WaitForReceive in interrupt mode).
    /// </summary>
    public long Interrupts => Volatile.Read(ref _interrupts);

    /// <summary>
    /// Receive: TCP segments the device coalesced into the frames counted in <see cref="Packets"/>, as it reported them
    /// with VIRTIO_NET_HDR_F_RSC_INFO (VIRTIO_NET_F_RSC_EXT); 0 on transmit queues and when the device does not say.
    /// </summary>
    public long CoalescedSegments => Volatile.Read(ref _coalescedSegments);

    /// <summary>
    /// Transmit: how many times the transmit watchdog found this queue holding frames with nothing returned by the device
    /// for <see cref="VirtioNetOptions.TransmitTimeout"/>; 0 on receive queues.
    /// </summary>
    public long TransmitTimeouts => Volatile.Read(ref _transmitTimeouts);

    /// <summary>
    /// Transmit: send attempts the ring turned away for want of room (<c>TrySend</c> returning false, a
    /// <c>TransmitBurst</c> stopped short with <see cref="TransmitBurstStatus.RingFull"/>, an <c>AllocateBurst</c> that
    /// got no buffer); a caller that retries counts each attempt. 0 on receive queues.
    /// </summary>
    public long RingFull => Volatile.Read(ref _ringFull);

    /// <summary>
    /// Checksums left to the device: transmit frames sent with NEEDS_CSUM (VIRTIO_NET_F_CSUM); received frames the device
    /// vouched for (DATA_VALID) or handed over partial (NEEDS_CSUM), as the driver passed them on.
    /// </summary>
    public long ChecksumsByDevice => Volatile.Read(ref _checksumsByDevice);

    /// <summary>
    /// Checksums the driver computed: transmit checksums asked for without VIRTIO_NET_F_CSUM; received partial checksums
    /// it completed and DATA_VALID claims it verified (found right or wrong).
    /// </summary>
    public long ChecksumsByDriver => Volatile.Read(ref _checksumsByDriver);

    /// <summary>Packets segmented by the device: transmit GSO packets (HOST_TSO4/6, USO), received coalesced ones (GUEST_TSO4/6, USO).</summary>
    public long SegmentationByDevice => Volatile.Read(ref _segmentationByDevice);

    /// <summary>Transmit: packets the driver cut into segments itself (the device lacks the segmentation feature they need); 0 on receive queues.</summary>
    public long SegmentationByDriver => Volatile.Read(ref _segmentationByDriver);

    /// <summary>The frames dropped for <paramref name="reason"/>; <see cref="Drops"/> is their sum.</summary>
    public long GetDrops(VirtioNetDropReason reason) => Volatile.Read(ref _dropsByReason[(int)reason]);

    internal void AddPacket(int bytes)
    {
        Volatile.Write(ref _packets, _packets + 1);
        Volatile.Write(ref _bytes, _bytes + bytes);
    }

    // A burst's packets at once: two stores per burst instead of two per packet.
    internal void AddPackets(int packets, long bytes)
    {
        Volatile.Write(ref _packets, _packets + packets);
        Volatile.Write(ref _bytes, _bytes + bytes);
    }

    internal void AddCoalescedSegments(int segments) => Volatile.Write(ref _coalescedSegments, _coalescedSegments + segments);

    internal void AddDrop(VirtioNetDropReason reason)
    {
        Volatile.Write(ref _dropsByReason[(int)reason], _dropsByReason[(int)reason] + 1);
        Volatile.Write(ref _drops, _drops + 1);
    }

    // What a burst tallied, once per burst; a burst of plain frames costs the one compare.
    internal void Add(ref BurstTally tally)
    {
        if (tally.IsEmpty)
        {
            return;
        }

        Volatile.Write(ref _checksumsByDevice, _checksumsByDevice + tally.ChecksumsByDevice);
        Volatile.Write(ref _checksumsByDriver, _checksumsByDriver + tally.ChecksumsByDriver);
        Volatile.Write(ref _segmentationByDevice, _segmentationByDevice + tally.SegmentationByDevice);
        Volatile.Write(ref _segmentationByDriver, _segmentationByDriver + tally.SegmentationByDriver);
        Volatile.Write(ref _ringFull, _ringFull + tally.RingFull);
        tally = default;
    }

    internal void AddError() => Volatile.Write(ref _errors, _errors + 1);

    internal void AddNotification() => Volatile.Write(ref _notifications, _notifications + 1);

    // The watchdog's timer thread is the only writer.
    internal void AddTransmitTimeout() => Interlocked.Increment(ref _transmitTimeouts);

    internal void AddRingFull() => Volatile.Write(ref _ringFull, _ringFull + 1);

    internal void AddInterrupt() => Volatile.Write(ref _interrupts, _interrupts + 1);
}
