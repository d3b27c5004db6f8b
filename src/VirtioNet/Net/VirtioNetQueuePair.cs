using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using VirtioNet.Core;
using VirtioNet.Net.FlowControl;
using VirtioNet.Net.Offloads;
using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>
/// Queue pair N of a device (receiveqN+1 and transmitqN+1, §5.1.2): its whole data path at every level, with one send
/// and one receive entry per level and the same behaviour whichever entry a frame takes. Burst (zero copy):
/// <see cref="AllocateBurst"/>/<see cref="TransmitBurst"/>, <see cref="ReceiveBurst"/>/<see cref="ReleaseBurst"/>.
/// Copying: <see cref="TrySend"/>, <see cref="TryReceive"/> with one <see cref="ReceivedFrame"/> record.
/// Asynchronous: <see cref="WaitForReceiveAsync"/> ("frames to take") and <see cref="WaitForTransmitRoomAsync"/> ("room
/// to send") beside the burst or copying entries, and <see cref="ReceiveAsync"/>, <see cref="SendAsync"/> and
/// <see cref="ReadAllAsync"/> over the copying ones; no thread of the device's waits, and nothing is allocated per wait.
/// Every send entry honours <see cref="RateLimit"/> and inserts <see cref="VlanTag"/>; every entry counts in the pair's
/// statistics, checks offloads, and with <see cref="VirtioNetOptions.AutoRecover"/> recovers a device found broken
/// (the call then reports nothing done: send again, receive again).
/// </summary>
/// <remarks>
/// Threading: one worker owns a pair at a time (the packet path takes no lock); a second thread calling into a queue
/// while its worker is inside gets an <see cref="InvalidOperationException"/> instead of a torn ring. Pairs are
/// independent: workers of different pairs may run and wait at once. An async caller is a worker too, whichever pool
/// thread its continuations run on: one wait per queue at a time, awaited before the next call on that queue.
/// </remarks>
public sealed class VirtioNetQueuePair
{
    // The device, for automatic recovery and the interrupt wait.
    private readonly VirtioNetDevice _device;

    // receiveqN+1.
    private readonly VirtioNetReceiveQueue _receive;

    // transmitqN+1.
    private readonly VirtioNetTransmitQueue _transmit;

    // TransmitBurst's copy of a burst with the pair's tag inserted (the caller's span is read-only); one per pair, so
    // tagging a burst never allocates.
    private readonly TransmitPacket[] _tagged;

    // A tagged frame with an offload request, built here before the queue copies it (the offload path copies once).
    private byte[]? _taggedFrame;

    // 1 when the device asked for an announcement that this pair's transmit worker is to make (pair 0 only).
    private int _announcePending;

    // How long SendAsync waits before trying again when the rate limit, not the ring, refused a frame.
    private static readonly TimeSpan RateLimitRetry = TimeSpan.FromMilliseconds(1);

    internal VirtioNetQueuePair(VirtioNetDevice device, int index, VirtioNetReceiveQueue receive, VirtioNetTransmitQueue transmit)
    {
        _device = device;
        Index = index;
        _receive = receive;
        _transmit = transmit;
        _tagged = new TransmitPacket[transmit.Queue.Size];
    }

    /// <summary>The pair's number: 0 for receiveq1/transmitq1.</summary>
    public int Index { get; }

    /// <summary>The receive queue's index on the device (2N).</summary>
    public int ReceiveQueueIndex => _receive.QueueIndex;

    /// <summary>The transmit queue's index on the device (2N + 1).</summary>
    public int TransmitQueueIndex => _transmit.QueueIndex;

    /// <summary>The largest frame <see cref="TryReceive"/> delivers; destinations must be at least this long.</summary>
    public int MaxReceiveFrameLength => _receive.MaxFrameLength;

    /// <summary>The largest frame <see cref="TrySend"/> accepts: the MTU plus the Ethernet header and one VLAN tag.</summary>
    public int MaxTransmitFrameLength => _transmit.MaxFrameLength;

    /// <summary>Receive buffers the pair posts (the most frames that can wait in it).</summary>
    public int ReceiveBufferCount => _receive.BufferCount;

    /// <summary>Transmit slots free right now (after the last reclaim).</summary>
    public int TransmitSlotsFree => _transmit.SlotsFree;

    /// <summary>Counters of the receive queue.</summary>
    public VirtioNetQueueStatistics ReceiveStatistics => _receive.Statistics;

    /// <summary>Counters of the transmit queue.</summary>
    public VirtioNetQueueStatistics TransmitStatistics => _transmit.Statistics;

    /// <summary>
    /// The transmit rate limit (a token bucket of frame bytes as sent, tag included), or null (unlimited, the default).
    /// Every send entry honours it: a frame without tokens is back-pressure (false, or
    /// <see cref="TransmitBurstStatus.RateLimited"/>), as a full ring is.
    /// </summary>
    public TokenBucket? RateLimit { get; set; }

    /// <summary>
    /// The 802.1Q tag every send entry inserts after the addresses of each frame (virtio has no tag offload, so the
    /// driver writes it), or null to send frames as given (the default).
    /// </summary>
    public VlanTag? VlanTag { get; set; }

    /// <summary>
    /// When on, <see cref="TryReceive"/> removes the outermost 802.1Q tag from each frame; the tag is reported in
    /// <see cref="ReceivedFrame.VlanTag"/> either way. Off by default. The burst entry hands frames as the device wrote them.
    /// </summary>
    public bool StripVlanTags { get; set; }

    /// <summary>The receive queue, for tests and the device's own bookkeeping.</summary>
    internal VirtioNetReceiveQueue ReceiveQueue => _receive;

    /// <summary>The transmit queue, for tests and the device's own bookkeeping.</summary>
    internal VirtioNetTransmitQueue TransmitQueue => _transmit;

    /// <summary>
    /// Copies <paramref name="frame"/> (Ethernet header onwards, no FCS) into a transmit buffer, with <see cref="VlanTag"/>
    /// inserted and the checksum and segmentation <paramref name="offload"/> asks for (done by the device when
    /// negotiated, by the driver otherwise), and hands it to the device. Returns false on back-pressure: the ring is full
    /// or <see cref="RateLimit"/> has too few tokens (or the device was just recovered): try again.
    /// </summary>
    /// <exception cref="ArgumentException">The frame is shorter than an Ethernet header, or too long (with its tag).</exception>
    public bool TrySend(ReadOnlySpan<byte> frame, TransmitOffloadRequest offload = default)
    {
        VlanTag? tag = VlanTag;
        int wireLength = frame.Length + (tag is null ? 0 : EthernetFrame.VlanTagLength);
        TokenBucket? limit = RateLimit;
        if (limit is not null && !limit.TryConsume(wireLength))
        {
            return false;
        }

        bool sent;
        try
        {
            RunPendingAnnounce();
            sent = SendCopy(frame, tag, offload);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            sent = false;
        }

        if (!sent)
        {
            limit?.Refund(wireLength);
        }

        return sent;
    }

    /// <summary>
    /// Copies the next received frame into <paramref name="destination"/> (Ethernet header onwards) and describes it in
    /// <paramref name="frame"/>: length, 802.1Q tag (stripped with <see cref="StripVlanTags"/>), the device's hash,
    /// checksum and GSO state, RSC counts. Returns false when no frame is waiting (or the device was just recovered).
    /// Malformed frames are counted in <see cref="VirtioNetQueueStatistics.Errors"/> and skipped.
    /// </summary>
    /// <param name="destination">At least <see cref="MaxReceiveFrameLength"/> bytes.</param>
    /// <param name="frame">What was received; default when nothing was.</param>
    public bool TryReceive(Span<byte> destination, out ReceivedFrame frame)
    {
        try
        {
            return _receive.TryReceive(destination, StripVlanTags, out frame);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            frame = default;
            return false;
        }
    }

    /// <summary>Takes back transmit buffers the device has completed. Returns how many (0 after an automatic recovery).</summary>
    public int Reclaim()
    {
        try
        {
            RunPendingAnnounce();
            return _transmit.Reclaim();
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            return 0;
        }
    }

    /// <summary>
    /// Waits until a received frame is ready (true) or <paramref name="timeout"/> passes (false). In interrupt mode it
    /// enables receive notifications and sleeps on the interrupt line (one worker per pair may wait at once, whatever
    /// the interrupt layout); in poll mode it spins on the used ring. Link changes seen meanwhile raise
    /// <see cref="VirtioNetDevice.LinkStateChanged"/>; a device found broken is recovered and the wait goes on.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another thread is already waiting on this pair.</exception>
    public bool WaitForReceive(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        _device.WaitForReceiveOn(_receive, timeout, cancellationToken);

    /// <summary>
    /// Completes when a received frame is ready to take (with <see cref="TryReceive"/> or <see cref="ReceiveBurst"/>),
    /// at once if one is. Otherwise it asks the device for a used-buffer notification on the receive queue and returns;
    /// the platform's interrupt dispatcher (one per process, for every device) completes it, and the continuation runs
    /// on the thread pool (or the awaiter's synchronization context). Nothing is allocated per wait. In poll mode the
    /// ring is looked at every millisecond. A completed wait means "look now": loop, as after any wait.
    /// </summary>
    /// <remarks>
    /// One wait per queue at a time, awaited before the next. Cancelling completes it with
    /// <see cref="OperationCanceledException"/>; awaiting that switches the notification off again, so the queue is as
    /// before the wait and the next wait works. A recovery completes a pending wait (look again); disposing the device
    /// completes it with <see cref="ObjectDisposedException"/>.
    /// </remarks>
    /// <exception cref="InvalidOperationException">A wait on this queue is already pending.</exception>
    public ValueTask WaitForReceiveAsync(CancellationToken cancellationToken = default) =>
        _device.WaitForReceiveAsync(_receive, cancellationToken);

    /// <summary>
    /// Completes when the transmit ring has room (after taking back what the device has sent), at once if it has.
    /// Otherwise it asks for a used-buffer notification delayed until about three quarters of the frames in flight have
    /// been sent (the event index set that far ahead, as Linux's virtqueue_enable_cb_delayed; the flags without
    /// VIRTIO_F_EVENT_IDX), so a sender that fills the ring waits without spinning and is woken once per batch, not once
    /// per frame. A wake-up by the device's notification counts in <see cref="TransmitStatistics"/>'s
    /// <see cref="VirtioNetQueueStatistics.Interrupts"/>. Rate limiting is not waited for (see <see cref="SendAsync"/>).
    /// </summary>
    /// <remarks><inheritdoc cref="WaitForReceiveAsync" path="/remarks"/></remarks>
    /// <exception cref="InvalidOperationException">A wait on this queue is already pending.</exception>
    public ValueTask WaitForTransmitRoomAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            RunPendingAnnounce();
            return _device.WaitForTransmitRoomAsync(_transmit, cancellationToken);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            return default;
        }
    }

    /// <summary>
    /// Receives the next frame into <paramref name="destination"/> (at least <see cref="MaxReceiveFrameLength"/> bytes),
    /// waiting for one with <see cref="WaitForReceiveAsync"/>: <see cref="TryReceive"/> and its record, asynchronously.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ReceivedFrame> ReceiveAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (TryReceive(destination.Span, out ReceivedFrame frame))
            {
                return frame;
            }

            await WaitForReceiveAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends <paramref name="frame"/> as <see cref="TrySend"/> does, waiting for room in the ring with
    /// <see cref="WaitForTransmitRoomAsync"/> and, when <see cref="RateLimit"/> refused it, a millisecond at a time for tokens.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ReadOnlyMemory<byte> frame, TransmitOffloadRequest offload = default, CancellationToken cancellationToken = default)
    {
        while (!TrySend(frame.Span, offload))
        {
            ValueTask room = WaitForTransmitRoomAsync(cancellationToken);
            bool roomNow = room.IsCompleted;
            await room.ConfigureAwait(false);
            if (roomNow && RateLimit is not null)
            {
                // The ring had room, so the bucket refused the frame: tokens come with time, not with a notification.
                await Task.Delay(RateLimitRetry, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The received frames as an asynchronous stream: each item describes the frame now in <paramref name="buffer"/>
    /// (at least <see cref="MaxReceiveFrameLength"/> bytes), valid until the next item is asked for. Ends only by
    /// <paramref name="cancellationToken"/> (<see cref="OperationCanceledException"/>) or the device's disposal
    /// (<see cref="ObjectDisposedException"/>), like a channel's ReadAllAsync that is never completed.
    /// </summary>
    public IAsyncEnumerable<ReceivedFrame> ReadAllAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ReadAll(buffer, cancellationToken);

    // ReadAllAsync's iterator, private so that the public signature does not name its compiler-generated state machine.
    private async IAsyncEnumerable<ReceivedFrame> ReadAll(Memory<byte> buffer, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (true)
        {
            while (TryReceive(buffer.Span, out ReceivedFrame frame))
            {
                yield return frame;
            }

            await WaitForReceiveAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lends up to <paramref name="packets"/>.Length transmit buffers (MaxTransmitFrameLength bytes each) to write
    /// frames into; returns how many. Give each back by <see cref="TransmitBurst"/> or <see cref="FreeBurst"/>.
    /// </summary>
    public int AllocateBurst(Span<TransmitPacket> packets)
    {
        try
        {
            RunPendingAnnounce();
            return _transmit.AllocateBurst(packets);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            return 0;
        }
    }

    /// <summary>
    /// Lends buffers for frames larger than the MTU (up to <see cref="VirtioNetTransmitQueue.MaxSegmentFrameLength"/>
    /// bytes), to be segmented by the device (TSO/USO) through <see cref="TransmitPacket.WithOffload"/>.
    /// </summary>
    public int AllocateLargeBurst(Span<TransmitPacket> packets)
    {
        try
        {
            return _transmit.AllocateLargeBurst(packets);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            return 0;
        }
    }

    /// <summary>Gives back buffers from <see cref="AllocateBurst"/> that will not be sent.</summary>
    public void FreeBurst(ReadOnlySpan<TransmitPacket> packets) => _transmit.FreeBurst(packets);

    /// <summary>
    /// Hands the packets to the device without copying them, each with <see cref="VlanTag"/> inserted in its buffer and
    /// within <see cref="RateLimit"/>, one notification for the burst. Returns how many were queued; from that count on
    /// the packets are still the caller's, unchanged, and <paramref name="status"/> says why (ring full, rate limited,
    /// an offload the device cannot do, or the device just recovered: <see cref="TransmitBurstStatus.RingFull"/>).
    /// </summary>
    public int TransmitBurst(ReadOnlySpan<TransmitPacket> packets, out TransmitBurstStatus status)
    {
        TokenBucket? limit = RateLimit;
        VlanTag? tag = VlanTag;
        if (tag is not null)
        {
            packets = packets[..Math.Min(packets.Length, _tagged.Length)];
        }

        // The rate limit admits a prefix of the burst; the rest stays the caller's.
        int admitted = packets.Length;
        int tagLength = tag is null ? 0 : EthernetFrame.VlanTagLength;
        if (limit is not null)
        {
            for (int i = 0; i < packets.Length; i++)
            {
                if (!limit.TryConsume(packets[i].Length + tagLength))
                {
                    admitted = i;
                    break;
                }
            }
        }

        ReadOnlySpan<TransmitPacket> burst = tag is { } t ? InsertTags(packets[..admitted], t) : packets[..admitted];
        int sent;
        try
        {
            // Completed slots first, as the copying entry does: a used ring the device broke is then seen by every
            // send entry at the same point (one read of the used index when nothing completed).
            RunPendingAnnounce();
            _transmit.Reclaim();
            sent = _transmit.TransmitBurst(burst, out status);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            sent = 0;
            status = TransmitBurstStatus.RingFull;
        }

        if (tag is not null)
        {
            RemoveTags(burst[sent..]);
        }

        if (limit is not null && sent < admitted)
        {
            limit.Refund(RefundOf(packets, sent, admitted, tagLength));
        }

        if (sent == admitted && admitted < packets.Length)
        {
            status = TransmitBurstStatus.RateLimited;
        }

        return sent;
    }

    /// <summary>
    /// Takes up to <paramref name="packets"/>.Length received buffers without copying; returns how many entries were
    /// filled (a multi-buffer packet fills consecutive entries, see <see cref="ReceivedPacket"/>). Give them back with
    /// <see cref="ReleaseBurst"/>. Each first entry carries its checked offload state and hash.
    /// </summary>
    public int ReceiveBurst(Span<ReceivedPacket> packets, ReceiveBurstOptions options = ReceiveBurstOptions.None)
    {
        try
        {
            return _receive.ReceiveBurst(packets, options);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            return 0;
        }
    }

    /// <summary>Gives received buffers back to the device (they are reposted). Valid across a recovery.</summary>
    public void ReleaseBurst(ReadOnlySpan<ReceivedPacket> packets)
    {
        try
        {
            _receive.ReleaseBurst(packets);
        }
        catch (VirtioException e) when (_device.TryRecoverFrom(e))
        {
            // Recovered: the buffers were taken back with the rest.
        }
    }

    // The device noticed an announcement request on a thread that is not this pair's transmit worker: the worker's next
    // transmit call makes it (VirtioNetDevice.HandleAnnounce).
    internal void RequestAnnounce() => Volatile.Write(ref _announcePending, 1);

    // One load on the transmit entries; the announcement itself is out of line.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RunPendingAnnounce()
    {
        if (Volatile.Read(ref _announcePending) != 0)
        {
            AnnounceNow();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void AnnounceNow()
    {
        if (Interlocked.Exchange(ref _announcePending, 0) != 0)
        {
            _device.Announce();
        }
    }

    private static long RefundOf(ReadOnlySpan<TransmitPacket> packets, int from, int to, int tagLength)
    {
        long refund = 0;
        for (int i = from; i < to; i++)
        {
            refund += packets[i].Length + tagLength;
        }

        return refund;
    }

    private bool SendCopy(ReadOnlySpan<byte> frame, VlanTag? tag, TransmitOffloadRequest offload)
    {
        if (offload == default)
        {
            return tag is { } t ? _transmit.TrySend(frame, t) : _transmit.TrySend(frame);
        }

        if (tag is not { } tagToInsert)
        {
            return _transmit.TrySend(frame, offload);
        }

        // Setup-time sized once: the largest frame the offload path takes, plus the tag.
        _taggedFrame ??= new byte[VirtioNetTransmitQueue.MaxSegmentFrameLength + EthernetFrame.VlanTagLength];
        if (frame.Length < EthernetFrame.HeaderLength || frame.Length > VirtioNetTransmitQueue.MaxSegmentFrameLength)
        {
            throw new ArgumentException($"A frame must be {EthernetFrame.HeaderLength} to {VirtioNetTransmitQueue.MaxSegmentFrameLength} bytes long; this one has {frame.Length}.", nameof(frame));
        }

        int length = VlanFrame.InsertTag(frame, tagToInsert, _taggedFrame);
        return _transmit.TrySend(_taggedFrame.AsSpan(0, length), offload);
    }

    // Inserts the tag in each packet's own buffer (the frame moves 4 bytes up behind its addresses); the buffer has room
    // when the caller left it, as MaxTransmitFrameLength counts one tag.
    private ReadOnlySpan<TransmitPacket> InsertTags(ReadOnlySpan<TransmitPacket> packets, VlanTag tag)
    {
        for (int i = 0; i < packets.Length; i++)
        {
            TransmitPacket packet = packets[i];
            Span<byte> buffer = packet.Span;
            int length = packet.Length;
            if (length < EthernetFrame.HeaderLength || length + EthernetFrame.VlanTagLength > buffer.Length)
            {
                RemoveTags(_tagged.AsSpan(0, i));
                throw new ArgumentException($"A frame to tag must be {EthernetFrame.HeaderLength} to {buffer.Length - EthernetFrame.VlanTagLength} bytes long; packet {i} has {length}.", nameof(packets));
            }

            // Overlapping copy: Span.CopyTo behaves like memmove.
            buffer[VlanFrame.TagOffset..length].CopyTo(buffer[(VlanFrame.TagOffset + EthernetFrame.VlanTagLength)..]);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[VlanFrame.TagOffset..], VlanFrame.TagProtocolIdentifier);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[(VlanFrame.TagOffset + 2)..], tag.Tci);
            _tagged[i] = packet.WithLength(length + EthernetFrame.VlanTagLength);
        }

        return _tagged.AsSpan(0, packets.Length);
    }

    // Undoes InsertTags for packets the device did not take: they go back to the caller as the caller wrote them.
    private static void RemoveTags(ReadOnlySpan<TransmitPacket> packets)
    {
        foreach (TransmitPacket packet in packets)
        {
            Span<byte> buffer = packet.Span;
            buffer[(VlanFrame.TagOffset + EthernetFrame.VlanTagLength)..packet.Length].CopyTo(buffer[VlanFrame.TagOffset..]);
        }
    }
}
