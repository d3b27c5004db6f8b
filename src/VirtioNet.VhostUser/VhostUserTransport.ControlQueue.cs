using System.Buffers.Binary;
using VirtioNet.Net.Control;

namespace VirtioNet.VhostUser;

/// <summary>
/// The control queue, served by the transport itself: in vhost-user the frontend plays the device for it (QEMU and
/// DPDK's virtio-user do the same), because the protocol has no control-queue messages; a VIRTIO_NET_CTRL_MQ
/// VQ_PAIRS_SET becomes SET_VRING_ENABLE of the data rings. Ref: virtio v1.2 §5.1.6.5, §5.1.6.5.5;
/// vhost-user.rst, "Multiple queue support".
/// </summary>
/// <remarks>
/// <para>
/// Offered only when more than one pair can be used (the backend's GET_QUEUE_NUM and
/// <see cref="VhostUserOptions.QueuePairs"/> both above one): CTRL_VQ and MQ, nothing else that needs the control
/// queue, so a driver never sends a command this transport cannot carry out. Any other command (class or command
/// number) is answered VIRTIO_NET_ERR, and VQ_PAIRS_SET outside 1 to max_virtqueue_pairs too (§5.1.6.5.5: the device
/// must not accept it).
/// </para>
/// <para>
/// The ring is never described to the backend: no SET_VRING_* for it. A notification of it runs the commands
/// available at that moment on the caller's thread, under the transport's lock, and completes them before returning;
/// no call eventfd is signalled, since the net driver polls its control queue's used ring. Both layouts are served:
/// the split ring (§2.7: available ring, used ring, avail_event) and the packed ring (§2.8: descriptors made available
/// by their AVAIL/USED flags against the wrap counter, a used descriptor written over the chain's first slot with the
/// buffer id of its last descriptor), so RING_PACKED stays offered with several pairs.
/// </para>
/// <para>
/// The ring is read through the library's device side of a ring (<see cref="DeviceSplitRing"/>,
/// <see cref="DevicePackedRing"/>): every address is checked to lie in the shared memory, chains are bounded, indirect
/// tables may not nest. A malformed chain makes <see cref="Notify"/> throw <see cref="VirtioException"/> with
/// <see cref="VirtioErrorReason.DeviceMisbehaved"/> (the other side of the ring, here the driver, broke it) and is left
/// unconsumed.
/// </para>
/// </remarks>
public sealed partial class VhostUserTransport
{
    // Largest control queue size reported; the net driver asks for few entries, and a command is one chain.
    private const int ControlQueueSizeMax = 64;

    // Longest chain walked (header, payload parts, ack, with room to spare); a longer one is a driver bug.
    private const int ControlChainMax = 16;

    // Queue pairs shown in max_virtqueue_pairs: min(GET_QUEUE_NUM, options). The control queue is served when above one.
    private int _configPairs = 1;

    // Pairs whose rings are enabled at the backend (§5.1.6.5.5: the device starts with one).
    private int _enabledPairs = 1;

    // The control queue's ring as the driver set it up, one of the two by its layout; both null while not set up.
    private DeviceSplitRing? _controlSplit;
    private DevicePackedRing? _controlPacked;

    // Commands completed; read by tests and tools.
    private long _controlCommands;

    /// <summary>True when the transport serves a control queue (VIRTIO_NET_F_CTRL_VQ and MQ are offered).</summary>
    public bool ServesControlQueue => _configPairs > 1;

    /// <summary>The control queue's index (2 × max_virtqueue_pairs, §5.1.2), or -1 when none is served.</summary>
    public int ControlQueueIndex => ServesControlQueue ? 2 * _configPairs : -1;

    /// <summary>Queue pairs whose rings the backend has enabled (set by VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET).</summary>
    public int EnabledQueuePairs => Volatile.Read(ref _enabledPairs);

    /// <summary>Control commands this transport has completed (with VIRTIO_NET_OK or VIRTIO_NET_ERR).</summary>
    public long ControlCommandsServed => Interlocked.Read(ref _controlCommands);

    // The features served here on top of the backend's (called under _lock).
    private ulong ControlQueueFeatures => ServesControlQueue ? VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Mq : 0;

    private bool IsControlQueue(int queueIndex) => ServesControlQueue && queueIndex == 2 * _configPairs;

    // A ring the backend runs: those of the pairs in max_virtqueue_pairs when the control queue is served (the driver
    // has no use for more, §5.1.2), otherwise every ring GET_QUEUE_NUM allows.
    private bool IsDataRing(int queueIndex) => queueIndex >= 0 && queueIndex < 2 * (ServesControlQueue ? _configPairs : MaxQueuePairs);

    // ActivateQueue for the control queue: remember the ring, tell the backend nothing.
    private void ActivateControlQueue(int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        bool packed = (_driverFeatures & VirtioFeatures.RingPacked) != 0;
        if (size < 1 || size > ControlQueueSizeMax || (!packed && (size & (size - 1)) != 0))
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"The control queue holds 1 to {ControlQueueSizeMax} entries{(packed ? string.Empty : ", a power of two")}.");
        }

        if (_controlSplit is not null || _controlPacked is not null)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: the control queue (vring {ControlQueueIndex}) is already started.");
        }

        // EVENT_IDX is not handed to the rings: the split ring's avail_event is written after every notification
        // (ServeControlQueue) and the packed device's structure stays at RING_EVENT_FLAGS_ENABLE, so a driver notifies
        // for every command whatever it negotiated.
        VhostUserDmaAllocator memory = _memory;
        if (packed)
        {
            _controlPacked = new DevicePackedRing(memory, size, descriptorArea, driverArea, deviceArea, eventIdx: false);
        }
        else
        {
            _controlSplit = new DeviceSplitRing(memory, size, descriptorArea, driverArea, deviceArea, eventIdx: false);
        }
    }

    // Forgets the control queue (reset, deactivation, reconnect).
    private void StopControlQueue()
    {
        _controlSplit = null;
        _controlPacked = null;
    }

    // Notify of the control queue: run every available command, each completed at once and in order (called with _lock
    // held). A malformed chain is reported with the transport's name.
    private void ServeControlQueue()
    {
        try
        {
            ServeControlRing();
        }
        catch (VirtioException error) when (error.Reason == VirtioErrorReason.DeviceMisbehaved)
        {
            throw new VirtioException(error.Reason, $"{Description}: the control queue (vring {ControlQueueIndex}): {error.Message}", error);
        }
    }

    private void ServeControlRing()
    {
        Span<DeviceBuffer> buffers = stackalloc DeviceBuffer[ControlChainMax];
        Span<byte> readable = stackalloc byte[ControlChain.ReadableMax];
        if (_controlSplit is { } split)
        {
            while (split.TryPop(buffers, out DeviceRingChain chain))
            {
                split.PushUsed(chain.Id, RunControlCommand(buffers[..chain.BufferCount], readable));
                Interlocked.Increment(ref _controlCommands);
            }

            // avail_event (§2.7.10): ask to be notified of the very next command. Without it a driver that negotiated
            // EVENT_IDX would see the device's interest stuck at the first entry and never notify again. Written always:
            // the field is in the ring either way, and a driver without EVENT_IDX ignores it.
            split.PublishAvailEvent();
            SharedMemory.FullBarrier();
        }
        else if (_controlPacked is { } packed)
        {
            // At most a ring's worth per notification: the driver cannot have more outstanding.
            for (int commands = 0; commands < packed.Size && packed.TryPop(buffers, out DeviceRingChain chain); commands++)
            {
                uint written = RunControlCommand(buffers[..chain.BufferCount], readable);

                // §2.8.4: VIRTQ_DESC_F_WRITE on the used descriptor when the device wrote into the chain.
                packed.Complete(chain.Id, written, written != 0);
                Interlocked.Increment(ref _controlCommands);
            }
        }
        else
        {
            throw new InvalidOperationException($"{Description}: the control queue (vring {ControlQueueIndex}) is not started; nothing to notify.");
        }
    }

    // Gathers one command chain, executes it and writes the ack; returns the bytes written into the chain.
    private uint RunControlCommand(ReadOnlySpan<DeviceBuffer> buffers, Span<byte> readable)
    {
        var chain = new ControlChain(readable);
        foreach (DeviceBuffer buffer in buffers)
        {
            AddBuffer(ref chain, buffer);
        }

        return CompleteControlCommand(ref chain);
    }

    // One buffer of a command chain (already checked by the ring: inside the shared memory, readable ones first):
    // readable bytes are gathered as far as ControlChain keeps them, the last byte of the last writable buffer is where
    // the ack goes (§5.1.6.5).
    private void AddBuffer(ref ControlChain chain, DeviceBuffer buffer)
    {
        if (buffer.Writable)
        {
            if (buffer.Length > 0)
            {
                chain.AckAddress = buffer.Address + buffer.Length - 1;
                chain.SawWritable = true;
            }
        }
        else
        {
            int take = (int)Math.Min(buffer.Length, (uint)(chain.Readable.Length - chain.ReadableLength));
            Shared(buffer.Address, (ulong)take).CopyTo(chain.Readable[chain.ReadableLength..]);
            chain.ReadableLength += take;
        }
    }

    // Executes the gathered command and writes its ack; returns the bytes written into the chain.
    private uint CompleteControlCommand(ref ControlChain chain)
    {
        if (!chain.SawWritable)
        {
            // Nowhere to put the ack: complete the chain untouched, and the driver sees a used length of 0.
            return 0;
        }

        ReadOnlySpan<byte> readable = chain.Readable[..chain.ReadableLength];
        byte ack = readable.Length >= 2 ? ExecuteControlCommand((VirtioNetControlClass)readable[0], readable[1], readable[2..]) : VirtioNetControlCommands.AckErr;
        Shared(chain.AckAddress, 1)[0] = ack;
        return 1;
    }

    // What each command does; VIRTIO_NET_OK or VIRTIO_NET_ERR.
    private byte ExecuteControlCommand(VirtioNetControlClass commandClass, byte command, ReadOnlySpan<byte> payload)
    {
        if (commandClass != VirtioNetControlClass.Mq || command != VirtioNetControlCommands.MqVqPairsSet || payload.Length < 2)
        {
            return VirtioNetControlCommands.AckErr;
        }

        int pairs = BinaryPrimitives.ReadUInt16LittleEndian(payload);
        if (pairs < 1 || pairs > _configPairs)
        {
            return VirtioNetControlCommands.AckErr;
        }

        EnableQueuePairs(pairs);
        return VirtioNetControlCommands.AckOk;
    }

    // SET_VRING_ENABLE 1 for the rings of the first 'pairs' pairs and 0 for the others that are started.
    private void EnableQueuePairs(int pairs)
    {
        if ((BackendFeatures & VhostUserFeatures.ProtocolFeatures) != 0)
        {
            for (int i = 0; i < 2 * _configPairs && i < _queues.Length; i++)
            {
                if (_queues[i] is { IsStarted: true })
                {
                    uint enable = i < 2 * pairs ? 1u : 0u;
                    _ = Command(VhostUserRequest.SetVringEnable, VhostUserCodec.EncodeVringState(VhostUserRequest.SetVringEnable, (uint)i, enable, _replyAck), [], $"for vring {i}");
                }
            }
        }

        Volatile.Write(ref _enabledPairs, pairs);
    }

    // A view of shared memory at a device address, bounds-checked against the region.
    private unsafe Span<byte> Shared(ulong deviceAddress, ulong length)
    {
        if (length > int.MaxValue || !_memory.TryGetUserAddress(deviceAddress, length, out ulong user))
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control queue names 0x{deviceAddress:x} (+{length}), outside the shared memory.");
        }

        // SAFETY: TryGetUserAddress checked that [user, user + length) lies inside the mapped memfd region, which stays
        // mapped while the transport (and so the caller's allocator) is alive; the span does not escape the caller.
        return new Span<byte>((void*)user, (int)length);
    }

    // What a command chain has shown so far.
    private ref struct ControlChain(Span<byte> readable)
    {
        // Readable bytes kept: more than any command this transport interprets (VQ_PAIRS_SET: 2 + 2).
        public const int ReadableMax = 64;

        public Span<byte> Readable = readable;
        public int ReadableLength;
        public ulong AckAddress;
        public bool SawWritable;
    }
}
