using System.Buffers.Binary;
using System.Runtime.InteropServices;
using VirtioNet.Core;
using VirtioNet.Net;
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
/// The ring is read as a device would read it: every address is checked to lie in the shared memory, chains are
/// bounded, indirect tables may not nest. A malformed chain makes <see cref="Notify"/> throw
/// <see cref="VirtioException"/> with <see cref="VirtioErrorReason.DeviceMisbehaved"/> (the other side of the ring,
/// here the driver, broke it) and is left unconsumed.
/// </para>
/// </remarks>
public sealed partial class VhostUserTransport
{
    // Split descriptor flags (§2.7.5).
    private const ushort DescriptorFlagNext = 1;
    private const ushort DescriptorFlagWrite = 2;
    private const ushort DescriptorFlagIndirect = 4;

    // Packed descriptor flags (§2.8.1): a descriptor is available when AVAIL equals the wrap counter and USED does not;
    // used when both equal it.
    private const ushort PackedFlagAvail = 1 << 7;
    private const ushort PackedFlagUsed = 1 << 15;

    // Largest control queue size reported; the net driver asks for few entries, and a command is one chain.
    private const int ControlQueueSizeMax = 64;

    // Longest chain walked (header, payload parts, ack, with room to spare); a longer one is a driver bug.
    private const int ControlChainMax = 16;

    // Queue pairs shown in max_virtqueue_pairs: min(GET_QUEUE_NUM, options). The control queue is served when above one.
    private int _configPairs = 1;

    // Pairs whose rings are enabled at the backend (§5.1.6.5.5: the device starts with one).
    private int _enabledPairs = 1;

    // The control queue's ring as the driver set it up; size 0 while not set up.
    private int _controlSize;
    private ulong _controlDescriptors;
    private ulong _controlDriverArea;
    private ulong _controlDeviceArea;

    // Split: the next available-ring index to take (the device's last_avail_idx). Packed: the next descriptor slot.
    private ushort _controlNextAvail;

    // Packed only: the wrap counter of _controlNextAvail's slot (§2.8.1; starts at 1). The chains are completed in order
    // as soon as they are read, so the used descriptors go to the same slots with the same counter.
    private bool _controlWrapCounter;

    // True when the control queue is a packed ring.
    private bool _controlPacked;

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

        if (_controlSize != 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: the control queue (vring {ControlQueueIndex}) is already started.");
        }

        ulong n = (ulong)size;
        int index = ControlQueueIndex;
        _ = UserAddress(descriptorArea, 16 * n, index, "descriptor table");
        _ = UserAddress(driverArea, packed ? 4 : 6 + (2 * n), index, "driver area");
        _ = UserAddress(deviceArea, packed ? 4 : 6 + (8 * n), index, "device area");
        _controlDescriptors = descriptorArea;
        _controlDriverArea = driverArea;
        _controlDeviceArea = deviceArea;
        _controlNextAvail = 0;
        _controlWrapCounter = true;
        _controlPacked = packed;
        _controlSize = size;
    }

    // Forgets the control queue (reset, deactivation, reconnect).
    private void StopControlQueue() => _controlSize = 0;

    // Notify of the control queue: run every available command (called with _lock held).
    private void ServeControlQueue()
    {
        if (_controlSize == 0)
        {
            throw new InvalidOperationException($"{Description}: the control queue (vring {ControlQueueIndex}) is not started; nothing to notify.");
        }

        if (_controlPacked)
        {
            ServePackedControlQueue();
            return;
        }

        int size = _controlSize;
        ushort availIdx = BinaryPrimitives.ReadUInt16LittleEndian(Shared(_controlDriverArea + 2, 2));

        // §2.7.6: the driver exposes at most size entries beyond what the device has taken; more is a broken ring.
        if ((ushort)(availIdx - _controlNextAvail) > size)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control queue's available index {availIdx} is more than {size} ahead of {_controlNextAvail}.");
        }

        // The available index is read before the entries it covers (acquire, paired with the driver's release).
        Interlocked.MemoryBarrier();
        while (_controlNextAvail != availIdx)
        {
            ushort head = BinaryPrimitives.ReadUInt16LittleEndian(Shared(_controlDriverArea + 4 + (2 * (ulong)(_controlNextAvail % size)), 2));
            uint written = RunControlCommand(head, size);

            // The used element is complete before the index that publishes it (§2.7.8).
            ushort usedIdx = BinaryPrimitives.ReadUInt16LittleEndian(Shared(_controlDeviceArea + 2, 2));
            Span<byte> element = Shared(_controlDeviceArea + 4 + (8 * (ulong)(usedIdx % size)), 8);
            BinaryPrimitives.WriteUInt32LittleEndian(element, head);
            BinaryPrimitives.WriteUInt32LittleEndian(element[4..], written);
            Interlocked.MemoryBarrier();
            BinaryPrimitives.WriteUInt16LittleEndian(Shared(_controlDeviceArea + 2, 2), (ushort)(usedIdx + 1));
            _controlNextAvail++;
            Interlocked.Increment(ref _controlCommands);
        }

        // avail_event (§2.7.10): ask to be notified of the very next command. Without it a driver that negotiated
        // EVENT_IDX would see the device's interest stuck at the first entry and never notify again. Written always: the
        // field is in the ring either way, and a driver without EVENT_IDX ignores it.
        BinaryPrimitives.WriteUInt16LittleEndian(Shared(_controlDeviceArea + 4 + (8 * (ulong)size), 2), _controlNextAvail);
        Interlocked.MemoryBarrier();
    }

    // Reads one split-ring command chain, executes it and writes the ack; returns the bytes written into the chain.
    private uint RunControlCommand(ushort head, int size)
    {
        if (head >= size)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control queue's available ring names descriptor {head} of {size}.");
        }

        var chain = new ControlChain(stackalloc byte[ControlChain.ReadableMax]);
        ulong table = _controlDescriptors;
        int tableSize = size;
        int index = head;
        bool indirect = false;
        for (int step = 0; ; step++)
        {
            if (step >= ControlChainMax || index >= tableSize)
            {
                throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control command at descriptor {head} is not a well-formed chain.");
            }

            Span<byte> descriptor = Shared(table + (16 * (ulong)index), 16);
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(descriptor);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(descriptor[8..]);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(descriptor[12..]);
            ushort next = BinaryPrimitives.ReadUInt16LittleEndian(descriptor[14..]);
            if ((flags & DescriptorFlagIndirect) != 0)
            {
                // §2.7.5.3: an indirect table stands for the whole chain, and never nests.
                CheckIndirectTable(indirect || step != 0, length, head);
                _ = Shared(address, length);
                table = address;
                tableSize = (int)(length / 16);
                index = 0;
                indirect = true;
                step = -1;
                continue;
            }

            AddBuffer(ref chain, address, length, (flags & DescriptorFlagWrite) != 0, head);
            if ((flags & DescriptorFlagNext) == 0)
            {
                break;
            }

            index = next;
        }

        return CompleteControlCommand(ref chain);
    }

    // Packed ring (§2.8): runs every chain made available since the last notification, each completed in place.
    private void ServePackedControlQueue()
    {
        int size = _controlSize;
        Span<byte> readable = stackalloc byte[ControlChain.ReadableMax];
        for (int commands = 0; commands < size; commands++)
        {
            int head = _controlNextAvail;
            ulong headAddress = _controlDescriptors + (16 * (ulong)head);

            // §2.8.1: the head's flags hand the chain over; read them first, the rest of the chain after (acquire).
            ushort headFlags = Volatile.Read(ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, ushort>(Shared(headAddress + 14, 2))));
            if (!IsAvailable(headFlags, _controlWrapCounter))
            {
                break;
            }

            var chain = new ControlChain(readable);
            int slot = head;
            bool wrap = _controlWrapCounter;
            int used = 0;
            ushort bufferId;
            while (true)
            {
                if (used >= Math.Min(size, ControlChainMax))
                {
                    throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control command at slot {head} is not a well-formed chain.");
                }

                Span<byte> descriptor = Shared(_controlDescriptors + (16 * (ulong)slot), 16);
                ulong address = BinaryPrimitives.ReadUInt64LittleEndian(descriptor);
                uint length = BinaryPrimitives.ReadUInt32LittleEndian(descriptor[8..]);
                bufferId = BinaryPrimitives.ReadUInt16LittleEndian(descriptor[12..]);
                ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(descriptor[14..]);
                used++;
                if (used > 1 && !IsAvailable(flags, wrap))
                {
                    throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control command at slot {head} continues into slot {slot}, which is not available.");
                }

                if ((flags & DescriptorFlagIndirect) != 0)
                {
                    // §2.8.7: one ring descriptor for the whole chain; the table's descriptors are read in sequence and
                    // WRITE is their only flag.
                    CheckIndirectTable(used != 1 || (flags & DescriptorFlagNext) != 0, length, head);
                    for (ulong i = 0; i < length / 16; i++)
                    {
                        Span<byte> entry = Shared(address + (16 * i), 16);
                        AddBuffer(ref chain, BinaryPrimitives.ReadUInt64LittleEndian(entry), BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]), (BinaryPrimitives.ReadUInt16LittleEndian(entry[14..]) & DescriptorFlagWrite) != 0, head);
                    }

                    break;
                }

                AddBuffer(ref chain, address, length, (flags & DescriptorFlagWrite) != 0, head);
                if ((flags & DescriptorFlagNext) == 0)
                {
                    break;
                }

                if (++slot == size)
                {
                    slot = 0;
                    wrap = !wrap;
                }
            }

            uint written = CompleteControlCommand(ref chain);

            // §2.8.6: one used descriptor for the chain, over its first slot, with the buffer id of its last descriptor
            // (§2.8.2 for the flags); id and length before the flags that publish it.
            Span<byte> usedDescriptor = Shared(headAddress, 16);
            BinaryPrimitives.WriteUInt32LittleEndian(usedDescriptor[8..], written);
            BinaryPrimitives.WriteUInt16LittleEndian(usedDescriptor[12..], bufferId);
            ushort usedFlags = _controlWrapCounter ? (ushort)(PackedFlagAvail | PackedFlagUsed) : (ushort)0;
            Volatile.Write(ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, ushort>(usedDescriptor[14..])), usedFlags);

            int nextSlot = head + used;
            if (nextSlot >= size)
            {
                nextSlot -= size;
                _controlWrapCounter = !_controlWrapCounter;
            }

            _controlNextAvail = (ushort)nextSlot;
            Interlocked.Increment(ref _controlCommands);
        }

        Interlocked.MemoryBarrier();
    }

    private static bool IsAvailable(ushort flags, bool wrapCounter) =>
        ((flags & PackedFlagAvail) != 0) == wrapCounter && ((flags & PackedFlagUsed) != 0) != wrapCounter;

    // An indirect table must stand alone (no nesting, no chaining into or out of it) and hold whole descriptors.
    private void CheckIndirectTable(bool misplaced, uint length, int head)
    {
        if (misplaced || length == 0 || length % 16 != 0 || length / 16 > ControlChainMax)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control command's indirect table at {head} ({length} bytes) is malformed.");
        }
    }

    // One buffer of a command chain: readable bytes are gathered (header and payload, as far as ControlChain keeps
    // them), the last byte of the last writable buffer is where the ack goes (§5.1.6.5).
    private void AddBuffer(ref ControlChain chain, ulong address, uint length, bool writable, int head)
    {
        if (writable)
        {
            if (length > 0)
            {
                _ = Shared(address, length);
                chain.AckAddress = address + length - 1;
                chain.SawWritable = true;
            }
        }
        else if (chain.SawWritable)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: the control command at descriptor {head} has a readable buffer after a writable one (§2.7.4.2).");
        }
        else
        {
            Span<byte> bytes = Shared(address, length);
            int take = Math.Min(bytes.Length, chain.Readable.Length - chain.ReadableLength);
            bytes[..take].CopyTo(chain.Readable[chain.ReadableLength..]);
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
