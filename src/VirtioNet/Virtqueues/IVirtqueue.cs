namespace VirtioNet.Virtqueues;

/// <summary>
/// The driver side of one virtqueue, split or packed. Not thread-safe: one worker owns a queue at a time.
/// </summary>
/// <remarks>
/// A chain is added with <see cref="TryAdd"/> (back-pressure: false when the ring is full), exposed to the device with
/// <see cref="KickPrepare"/> (which also says whether the device wants a notification), and comes back through
/// <see cref="TryTakeUsed"/>. Everything the device writes is validated; a device that writes something impossible
/// latches the queue broken and every later call throws <see cref="Core.VirtioException"/>
/// with <see cref="Core.VirtioErrorReason.DeviceMisbehaved"/>.
/// </remarks>
public interface IVirtqueue : IDisposable
{
    /// <summary>The queue's index on the device.</summary>
    int QueueIndex { get; }

    /// <summary>Number of entries in the ring.</summary>
    int Size { get; }

    /// <summary>Descriptors currently free.</summary>
    int FreeDescriptors { get; }

    /// <summary>Chains added and not yet taken back.</summary>
    int Outstanding { get; }

    /// <summary>True once the device has made a mess of this queue.</summary>
    bool IsBroken { get; }

    /// <summary>Device address of the descriptor area (table or packed ring).</summary>
    ulong DescriptorArea { get; }

    /// <summary>Device address of the driver area (available ring or driver event suppression).</summary>
    ulong DriverArea { get; }

    /// <summary>Device address of the device area (used ring or device event suppression).</summary>
    ulong DeviceArea { get; }

    /// <summary>
    /// Adds a chain: device-readable buffers first, then device-writable ones (§2.7.4.2). <paramref name="token"/>
    /// comes back with the chain in <see cref="TryTakeUsed"/>. Returns false when there is no room.
    /// The chain is not visible to the device until <see cref="KickPrepare"/>.
    /// </summary>
    bool TryAdd(ReadOnlySpan<VirtqBuffer> chain, int token);

    /// <summary>
    /// Adds a chain of one buffer: what <see cref="TryAdd"/> does for a one-element chain, without building one. The
    /// packet paths use it for every transmit frame and receive buffer that fits one descriptor.
    /// </summary>
    bool TryAddOne(ulong address, uint length, bool deviceWritable, int token)
    {
        var buffer = new VirtqBuffer(address, length, deviceWritable);
        return TryAdd(new ReadOnlySpan<VirtqBuffer>(in buffer), token);
    }

    /// <summary>
    /// Publishes every chain added since the last call and returns true when the device must be notified
    /// (per VIRTIO_F_EVENT_IDX or the device's flags).
    /// </summary>
    bool KickPrepare();

    /// <summary>Takes one used chain back, or returns false when the device has returned none.</summary>
    bool TryTakeUsed(out UsedBuffer used);

    /// <summary>
    /// Takes up to <paramref name="used"/>.Length used chains at once, oldest first, each checked exactly as
    /// <see cref="TryTakeUsed"/> checks it; returns how many were taken (0 when the device has returned none). The receive
    /// paths take a burst this way, so the ring is asked once per burst instead of once per buffer.
    /// </summary>
    /// <remarks>
    /// When the device wrote something impossible after some good entries, those are returned and the queue is latched
    /// broken: the next call throws, as the call after the last good <see cref="TryTakeUsed"/> would. A lie in the first
    /// entry throws at once. The default takes them one at a time with <see cref="TryTakeUsed"/>.
    /// </remarks>
    int TakeUsedBatch(Span<UsedBuffer> used)
    {
        int count = 0;
        try
        {
            while (count < used.Length && TryTakeUsed(out used[count]))
            {
                count++;
            }
        }
        catch (Core.VirtioException) when (count > 0 && IsBroken)
        {
            // The good entries before the lie are the caller's; the broken latch makes the next call throw.
        }

        return count;
    }

    /// <summary>
    /// Adds one single-buffer, device-writable chain per token: the buffer of token t at
    /// <paramref name="baseAddress"/> + t × <paramref name="stride"/>, <paramref name="length"/> bytes. Returns how many
    /// were added (fewer than asked when the ring is full). What <see cref="TryAddOne"/> does for each, as one call: a
    /// receive refill reposts its fixed slots this way.
    /// </summary>
    int TryAddWritableSlots(ReadOnlySpan<int> tokens, ulong baseAddress, int stride, uint length)
    {
        int added = 0;
        while (added < tokens.Length && TryAddOne(baseAddress + ((ulong)tokens[added] * (ulong)stride), length, deviceWritable: true, tokens[added]))
        {
            added++;
        }

        return added;
    }

    /// <summary>True when the device has returned chains the driver has not taken yet.</summary>
    bool HasUsed { get; }

    /// <summary>Asks the device not to send used-buffer notifications for this queue (a hint the device may ignore).</summary>
    void DisableInterrupts();

    /// <summary>
    /// Asks for a notification on the next used buffer. Returns false when used buffers are already pending,
    /// in which case the caller must process them instead of waiting (the race of §2.7.10).
    /// </summary>
    bool EnableInterrupts();

    /// <summary>
    /// Asks for a notification once about three quarters of the outstanding chains have been used, rather than at the
    /// next one (Linux's virtqueue_enable_cb_delayed): with VIRTIO_F_EVENT_IDX the event index is set that far ahead,
    /// without it the flags simply enable notifications. Returns false when the device has already used more than that,
    /// in which case no notification will come and the caller must take them now. A transmit queue waiting for room uses
    /// it, so a sender that filled the ring is woken once per batch of completions instead of once per frame.
    /// </summary>
    /// <remarks>The default asks for the next used buffer, as <see cref="EnableInterrupts"/> does.</remarks>
    bool EnableInterruptsDelayed() => EnableInterrupts();

    /// <summary>Takes back the tokens of every chain still outstanding, for teardown after the device was reset.</summary>
    int DetachAll(Span<int> tokens);

    /// <summary>
    /// Takes back the tokens of every chain still outstanding after the whole device was reset (§2.1.2 DEVICE_NEEDS_RESET,
    /// §3.3.1), exactly as <see cref="DetachAll"/> does, and clears a broken latch: the device that made the mess has
    /// forgotten the ring, so the queue can be activated again at the same addresses as a new one.
    /// </summary>
    /// <remarks>The default, for queues that cannot be recovered, throws <see cref="NotSupportedException"/>.</remarks>
    int DetachAllAfterDeviceReset(Span<int> tokens) => throw new NotSupportedException($"{GetType().Name} cannot be recovered after a device reset.");

    /// <summary>A snapshot for dumps.</summary>
    VirtqueueState GetState();

    /// <summary>
    /// The 32-bit value an available buffer notification carries with VIRTIO_F_NOTIFICATION_DATA: the queue index in
    /// bits 0-15, then next_off (bits 16-30) and next_wrap (bit 31) naming where the driver writes its next available
    /// entry (split: avail.idx, whose top bit is next_wrap) or descriptor (packed: its slot and the Driver Ring Wrap
    /// Counter). Describes what the last <see cref="KickPrepare"/> published; call it right after. Ref: virtio v1.2 §2.9.
    /// </summary>
    /// <remarks>The default, for queues that cannot say, throws <see cref="NotSupportedException"/>.</remarks>
    uint GetNotificationData() => throw new NotSupportedException($"{GetType().Name} cannot describe its available ring for VIRTIO_F_NOTIFICATION_DATA.");
}
