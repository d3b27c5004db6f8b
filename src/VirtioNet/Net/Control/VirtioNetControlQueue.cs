using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net.Control;

/// <summary>
/// The control virtqueue (VIRTIO_NET_F_CTRL_VQ): one command at a time, each a device-readable header (class, command)
/// and payload followed by a device-writable ack byte and, for the commands that answer with data, a device-writable
/// reply buffer (<c>command-specific-result</c>); completed by polling the used ring with a timeout so that a slow or
/// dead device cannot wedge the caller. Ref: virtio v1.2 §5.1.6.5; virtio v1.3 §5.1.6.5 (command-specific-result).
/// </summary>
/// <remarks>
/// <para>
/// Thread-safe: commands are serialized by a lock, so any thread may send one while a worker owns the data queues.
/// </para>
/// <para>
/// A command that times out stays posted: the device may still complete it and write the ack byte. Its buffer is
/// therefore kept (never reused or freed before the device is reset), and the queue refuses every later command with
/// <see cref="VirtioErrorReason.Timeout"/>; a device reset (closing and reopening the device) is the way out.
/// </para>
/// </remarks>
internal sealed class VirtioNetControlQueue : IDisposable
{
    /// <summary>
    /// The largest reply a command may ask for: room for every statistics block of 25 queues (160 bytes each at most,
    /// §5.1.6.5.11), and far more than a VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET reply (8 bytes).
    /// </summary>
    public const int MaxReplyLength = 4096;

    // Layout of the one command buffer: header at 0, ack at 8 (its own descriptor, device-writable), payload from 16,
    // then the reply area (device-writable, after the ack in the chain as struct virtio_net_ctrl orders them).
    // The ack gets a descriptor of its own because §5.1.6.5 makes it the first device-writable part.
    private const int AckOffset = 8;
    private const int PayloadOffset = 16;

    // A value the device never writes as an ack, so an untouched byte is told apart from VIRTIO_NET_OK.
    private const byte AckNotWritten = 0xFF;

    // Header, two payload parts (the MAC table command has two tables), ack; or header, payload, ack, reply.
    private const int MaxChain = 4;

    // Serializes commands: the ring and the buffer hold one command at a time.
    private readonly Lock _lock = new();

    // The ring itself; touched only under _lock.
    private readonly IVirtqueue _queue;

    // Where _buffer came from, to give it back, and to sync it on non-coherent platforms.
    private readonly IDmaAllocator _dma;

    // Sends the available-buffer notification.
    private readonly Action<int> _notify;

    // The command buffer (header, ack, payload, reply).
    private readonly DmaRegion _buffer;

    // Where the reply area starts in _buffer: after the largest payload, 8-byte aligned.
    private readonly int _replyOffset;

    // For messages: which device this is.
    private readonly string _deviceDescription;

    // Scratch chain, so a command allocates nothing on the ring side.
    private readonly VirtqBuffer[] _chain = new VirtqBuffer[MaxChain];

    // Set once a command timed out or the ring broke: why every later command is refused.
    private VirtioException? _unusable;

    // Counters, written under _lock.
    private long _completed;
    private long _rejected;

    // Set once disposed.
    private bool _disposed;

    internal VirtioNetControlQueue(
        int queueIndex, int size, TimeSpan timeout, int maxPayloadLength, string deviceDescription,
        IDmaAllocator dma, Func<int, int, int, IVirtqueue> createQueue, Action<int> notify)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPayloadLength);
        Timeout = timeout;
        MaxPayloadLength = maxPayloadLength;
        _deviceDescription = deviceDescription;
        _dma = dma;
        _notify = notify;
        _queue = createQueue(queueIndex, size, MaxChain);
        _replyOffset = PayloadOffset + ((maxPayloadLength + 7) & ~7);
        try
        {
            _buffer = dma.Allocate(_replyOffset + MaxReplyLength, 64);
        }
        catch
        {
            _queue.Dispose();
            throw;
        }

        // Completions are polled for; an interrupt per command would only wake the data-path worker for nothing.
        _queue.DisableInterrupts();
    }

    /// <summary>The queue's index on the device (2 × the number of queue pairs, §5.1.2).</summary>
    public int QueueIndex => _queue.QueueIndex;

    /// <summary>How long a command may take before it fails with <see cref="VirtioErrorReason.Timeout"/>.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The largest payload (both parts together) a command may carry.</summary>
    public int MaxPayloadLength { get; }

    /// <summary>False once a command timed out or the device broke the ring; every later command then fails.</summary>
    public bool IsUsable => Volatile.Read(ref _unusable) is null;

    /// <summary>Commands the device acknowledged with VIRTIO_NET_OK.</summary>
    public long CommandsCompleted => Interlocked.Read(ref _completed);

    /// <summary>Commands the device answered with VIRTIO_NET_ERR.</summary>
    public long CommandsRejected => Interlocked.Read(ref _rejected);

    internal IVirtqueue Queue => _queue;

    /// <summary>
    /// Sends one command and waits for its ack. Returns when the device answered VIRTIO_NET_OK.
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.CommandRejected"/> when the device answered VIRTIO_NET_ERR;
    /// <see cref="VirtioErrorReason.Timeout"/> when it did not answer within <see cref="Timeout"/> (the queue is then
    /// unusable) or an earlier command timed out; <see cref="VirtioErrorReason.DeviceMisbehaved"/> for an impossible answer.
    /// </exception>
    /// <exception cref="ArgumentException">The payload is longer than <see cref="MaxPayloadLength"/>.</exception>
    public void Execute(VirtioNetControlClass commandClass, byte command, ReadOnlySpan<byte> payload) =>
        Execute(commandClass, command, payload, ReadOnlySpan<byte>.Empty);

    /// <summary>
    /// Sends one command whose payload has two parts, each in a descriptor of its own (as a legacy device without
    /// VIRTIO_F_ANY_LAYOUT expects for VIRTIO_NET_CTRL_MAC_TABLE_SET, §5.1.6.5.2), and waits for its ack.
    /// </summary>
    /// <inheritdoc cref="Execute(VirtioNetControlClass, byte, ReadOnlySpan{byte})" path="/exception"/>
    public void Execute(VirtioNetControlClass commandClass, byte command, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> secondPayload) =>
        Send(commandClass, command, payload, secondPayload, Span<byte>.Empty);

    /// <summary>
    /// Sends one command whose answer carries data (<c>command-specific-result</c>, e.g. VIRTIO_NET_CTRL_STATS_GET or
    /// VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET) and waits for it. The reply buffer is offered to the device after the ack
    /// byte; the used length the device reports says how much it wrote (ack included), and only that much is copied
    /// into <paramref name="reply"/>. Ref: virtio v1.3 §5.1.6.5; §2.7.8.2 (the driver must not rely on data beyond the
    /// used length).
    /// </summary>
    /// <param name="commandClass">The class.</param>
    /// <param name="command">The command.</param>
    /// <param name="payload">The device-readable <c>command-specific-data</c>.</param>
    /// <param name="reply">Receives the reply; its length is the capacity offered to the device (1 to <see cref="MaxReplyLength"/>).</param>
    /// <returns>The bytes of reply the device wrote (0 to <paramref name="reply"/>'s length), copied to the start of <paramref name="reply"/>.</returns>
    /// <exception cref="VirtioException">
    /// As <see cref="Execute(VirtioNetControlClass, byte, ReadOnlySpan{byte})"/>; also
    /// <see cref="VirtioErrorReason.DeviceMisbehaved"/> when the used length claims more than the buffers offered.
    /// On VIRTIO_NET_ERR the reply is discarded (§5.1.6.5.9: the driver must ignore it).
    /// </exception>
    /// <exception cref="ArgumentException">The payload is too long, or the reply buffer is empty or longer than <see cref="MaxReplyLength"/>.</exception>
    public int ExecuteWithReply(VirtioNetControlClass commandClass, byte command, ReadOnlySpan<byte> payload, Span<byte> reply)
    {
        if (reply.IsEmpty || reply.Length > MaxReplyLength)
        {
            throw new ArgumentException($"A reply buffer holds 1 to {MaxReplyLength} bytes; this one has {reply.Length}.", nameof(reply));
        }

        return Send(commandClass, command, payload, ReadOnlySpan<byte>.Empty, reply);
    }

    private int Send(VirtioNetControlClass commandClass, byte command, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> secondPayload, Span<byte> reply)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (payload.Length + secondPayload.Length > MaxPayloadLength)
        {
            throw new ArgumentException($"A control command carries at most {MaxPayloadLength} bytes; this one has {payload.Length + secondPayload.Length}.", nameof(payload));
        }

        string name = VirtioNetControlCommands.Name(commandClass, command);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_unusable is { } cause)
            {
                throw new VirtioException(cause.Reason, $"{_deviceDescription}: {name} was not sent: the control queue is unusable until the device is reset ({cause.Message})", cause);
            }

            try
            {
                byte ack = Run(commandClass, command, payload, secondPayload, reply.Length, name, out int replyLength);
                if (ack == VirtioNetControlCommands.AckOk)
                {
                    // Only what the used length covers is copied: bytes past it are whatever the buffer held before.
                    _buffer.Span.Slice(_replyOffset, replyLength).CopyTo(reply);
                    _completed++;
                    return replyLength;
                }

                if (ack == VirtioNetControlCommands.AckErr)
                {
                    _rejected++;
                    throw new VirtioException(VirtioErrorReason.CommandRejected, $"{_deviceDescription}: the device rejected {name} (VIRTIO_NET_ERR).");
                }

                throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{_deviceDescription}: the device answered {name} with ack {ack}, neither VIRTIO_NET_OK nor VIRTIO_NET_ERR.");
            }
            catch (VirtioException e) when (e.Reason is VirtioErrorReason.Timeout || _queue.IsBroken)
            {
                // The command may still be in the device's hands (or the ring is beyond repair): never reuse the buffer.
                Volatile.Write(ref _unusable, e);
                throw;
            }
        }
    }

    private byte Run(VirtioNetControlClass commandClass, byte command, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> secondPayload, int replyCapacity, string name, out int replyLength)
    {
        replyLength = 0;
        Span<byte> memory = _buffer.Span;
        memory[0] = (byte)commandClass;
        memory[1] = command;
        memory[AckOffset] = AckNotWritten;

        // A device that reports more than it wrote then hands back zeros, not an earlier command's reply.
        memory.Slice(_replyOffset, replyCapacity).Clear();
        payload.CopyTo(memory[PayloadOffset..]);
        secondPayload.CopyTo(memory[(PayloadOffset + payload.Length)..]);
        _dma.SyncForDevice(_buffer);

        ulong address = _buffer.DeviceAddress;
        int count = 0;
        _chain[count++] = new VirtqBuffer(address, 2, DeviceWritable: false);
        if (!payload.IsEmpty)
        {
            _chain[count++] = new VirtqBuffer(address + PayloadOffset, (uint)payload.Length, DeviceWritable: false);
        }

        if (!secondPayload.IsEmpty)
        {
            _chain[count++] = new VirtqBuffer(address + PayloadOffset + (ulong)payload.Length, (uint)secondPayload.Length, DeviceWritable: false);
        }

        _chain[count++] = new VirtqBuffer(address + AckOffset, 1, DeviceWritable: true);
        if (replyCapacity > 0)
        {
            _chain[count++] = new VirtqBuffer(address + (ulong)_replyOffset, (uint)replyCapacity, DeviceWritable: true);
        }

        if (!_queue.TryAdd(_chain.AsSpan(0, count), 0))
        {
            // One command at a time and each taken back before the next: a full ring means the queue is too small for one chain.
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{_deviceDescription}: {name} does not fit in the control queue ({_queue.FreeDescriptors} descriptors free for a chain of {count}).");
        }

        if (_queue.KickPrepare())
        {
            _notify(_queue.QueueIndex);
        }

        // Poll, backing off from spinning to yielding to 1 ms sleeps (SpinWait's policy): QEMU answers within a few
        // hundred microseconds, and a command is rare enough that the sleeps cost nothing that matters.
        var clock = Stopwatch.StartNew();
        var spinner = default(SpinWait);
        UsedBuffer used;
        while (!_queue.TryTakeUsed(out used))
        {
            if (clock.Elapsed >= Timeout)
            {
                throw new VirtioException(VirtioErrorReason.Timeout, $"{_deviceDescription}: {name} got no answer within {Timeout.TotalMilliseconds:0} ms; the command's buffer stays reserved in case the device completes it late.");
            }

            spinner.SpinOnce();
        }

        if (used.Length < 1)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{_deviceDescription}: the device returned {name} without writing its ack byte (used length {used.Length}).");
        }

        // §2.7.8.2: the used length is what the device wrote into the writable buffers, ack first. A command with a
        // reply exists only on modern devices (its features are above bit 31), so the legacy habit of reporting the whole
        // descriptor length (§5.1.6.2.1 legacy) does not apply; a length past the buffers offered is a lie.
        if (replyCapacity > 0)
        {
            if (used.Length > 1 + (uint)replyCapacity)
            {
                throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{_deviceDescription}: the device claims to have written {used.Length} bytes of {name}'s ack and reply; it was offered {1 + replyCapacity}.");
            }

            replyLength = (int)used.Length - 1;
        }

        _dma.SyncForCpu(_buffer);
        return Volatile.Read(ref memory[AckOffset]);
    }

    /// <summary>
    /// After the whole device was reset (recovery): takes the command buffer back from the ring, clears a broken latch
    /// and forgets a timed-out command, so the queue can be activated again at the same addresses. Waits for a command
    /// in progress on another thread to end (at most <see cref="Timeout"/>, against a device that no longer answers).
    /// </summary>
    internal void ResetAfterDeviceReset()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Span<int> tokens = stackalloc int[MaxChain];
            _queue.DetachAllAfterDeviceReset(tokens[.._queue.Outstanding]);
            Volatile.Write(ref _unusable, null);
            _queue.DisableInterrupts();
        }
    }

    /// <summary>Releases the queue and its buffer. The device must be reset first so it no longer touches them.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _queue.Dispose();
            _dma.Free(_buffer);
        }
    }
}
