using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

/// <summary>
/// A virtio-net device behind a vhost-user backend (DPDK's vhost, a software switch), driven through the same transport
/// primitives as virtio-mmio and virtio-pci, so the net driver does not know which it drives.
/// Ref: QEMU docs/interop/vhost-user.rst (the protocol), virtio v1.2 §3.1.1 (the handshake it is mapped onto).
/// </summary>
/// <remarks>
/// <para>
/// Mapping. vhost-user has no registers. The device status is kept on the driver side (and forwarded with SET_STATUS
/// when the backend offers VHOST_USER_PROTOCOL_F_STATUS); FEATURES_OK sends SET_FEATURES and SET_MEM_TABLE (the
/// backend's answer decides whether FEATURES_OK stays set); <see cref="ActivateQueue"/> sends SET_VRING_NUM, BASE,
/// ADDR, CALL, KICK and ENABLE, in that order, because the backend starts a ring on its kick descriptor and the ring
/// must be fully described by then (vhost-user.rst, "Ring states"); a reset stops every started ring with
/// GET_VRING_BASE, whose reply guarantees the backend no longer touches it. <see cref="Notify"/> writes the kick
/// eventfd; <see cref="Interrupt"/> waits on the call eventfds.
/// </para>
/// <para>
/// Features. The driver is offered the backend's features minus what a frontend must handle itself or cannot use:
/// VHOST_USER_F_PROTOCOL_FEATURES and VHOST_F_LOG_ALL (protocol-level), ACCESS_PLATFORM (no IOTLB here), the control
/// queue and everything that needs it (in vhost-user the frontend, not the backend, serves the control queue; this
/// transport serves it for CTRL_VQ and MQ only, when more than one pair is usable: see VhostUserTransport.ControlQueue.cs), and
/// MTU/SPEED_DUPLEX unless GET_CONFIG can read their values. It adds VIRTIO_NET_F_STATUS, served by the transport
/// (link up while the socket is connected), and VIRTIO_NET_F_MAC when a MAC is known (from GET_CONFIG or
/// <see cref="VhostUserOptions.MacAddress"/>). Bits the transport serves itself never reach SET_FEATURES.
/// </para>
/// <para>
/// Backend loss. The socket's hang-up is seen by the interrupt line's poll, by the link status read (poll mode reads it
/// every <see cref="VirtioNetOptions.LinkPollInterval"/>), or by the next request. From then on the link reads down,
/// a configuration change is signalled, and every operation that needs the backend (status reads of a live device,
/// notifications, queue set-up) throws <see cref="VirtioException"/> with <see cref="VirtioErrorReason.PlatformFailure"/>
/// and "vhost-user backend at PATH went away". A reset still succeeds, so the net driver disposes cleanly. To resume,
/// dispose the net device, call <see cref="Reconnect"/>, and open the net device again on this transport
/// (<see cref="VhostUserNetDevice"/> does the three steps).
/// </para>
/// </remarks>
public sealed partial class VhostUserTransport : IVirtioTransport
{
    /// <summary>The virtio device id reported: a vhost-user net backend is a network device (1). Ref: virtio v1.2 §5.</summary>
    public const uint NetworkDeviceId = VirtioDeviceTypes.Network;

    /// <summary>The largest ring vhost-user backends accept (the split ring's limit, §2.7). The protocol has no query for it.</summary>
    public const int MaxQueueSize = 32768;

    /// <summary>Bytes of virtio_net_config this transport serves (through duplex and the RSS fields). Ref: virtio v1.2 §5.1.4.</summary>
    public const int NetConfigLength = 24;

    // The protocol features this frontend uses when offered.
    private const VhostUserProtocolFeatures WantedProtocolFeatures =
        VhostUserProtocolFeatures.Mq | VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.Status;

    // Never shown to the driver: protocol-level bits, the IOTLB, the control queue with what depends on it, and the two
    // transport features a kick eventfd cannot serve (NOTIFICATION_DATA has nowhere to put the data; RING_RESET has no
    // per-ring reset message in vhost-user).
    private const ulong HiddenFeatures =
        VirtioFeatures.NotificationData | VirtioFeatures.RingReset |
        VhostUserFeatures.ProtocolFeatures | VhostUserFeatures.LogAll | VirtioFeatures.AccessPlatform |
        VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlVlan | VirtioNetFeatures.CtrlRxExtra |
        VirtioNetFeatures.GuestAnnounce | VirtioNetFeatures.CtrlMacAddr | VirtioNetFeatures.CtrlGuestOffloads |
        VirtioNetFeatures.Mq | VirtioNetFeatures.Rss | VirtioNetFeatures.HashReport;

    // Serializes requests on the socket and changes of the fields below.
    private readonly Lock _lock = new();

    // The caller's choices, validated.
    private readonly VhostUserOptions _options;

    // The memory shared with the backend; owned by the caller.
    private readonly VhostUserDmaAllocator _memory;

    // Client mode's listening socket; null in connect mode.
    private readonly VhostUserListener? _listener;

    // The line over the call eventfds.
    private readonly VhostUserInterruptLine _interrupt;

    // The current connection; replaced by Reconnect.
    private volatile VhostUserChannel _channel;

    // Per vring, created on first activation and kept across resets and reconnects. Index = vring index.
    private VhostUserQueue?[] _queues = [];

    // Kick eventfds by vring index, for the lock-free Notify.
    private volatile EventFileDescriptor?[] _kicks = [];

    // Call eventfds of the started vrings, for the lock-free interrupt poll.
    private volatile EventFileDescriptor[] _calls = [];

    // The driver-side device status.
    private VirtioDeviceStatus _status;

    // What the driver wrote to the feature bits.
    private ulong _driverFeatures;

    // True once SET_FEATURES and SET_MEM_TABLE went out for the current session.
    private bool _featuresSent;

    // True when REPLY_ACK is negotiated: every command asks for and checks an acknowledgement.
    private bool _replyAck;

    // virtio_net_config as served to the driver (the status field is computed on read).
    private byte[] _config = new byte[NetConfigLength];

    // True when _config came from the backend (GET_CONFIG), false when synthesized.
    private bool _configFromBackend;

    // Bumped when the configuration changes (backend lost, reconnected). Ref: virtio v1.2 §2.5.1.
    private int _configGeneration;

    // 1 while a configuration change waits to be acknowledged.
    private int _configChangePending;

    // 1 once the loss of the current channel has been handled.
    private int _lossHandled;

    // Used-buffer signals consumed from the call eventfds.
    private long _interruptSignals;

    // Set once Dispose has started.
    private bool _disposed;

    private VhostUserTransport(VhostUserOptions options, VhostUserDmaAllocator memory, VhostUserListener? listener, VhostUserChannel channel)
    {
        _options = options;
        _memory = memory;
        _listener = listener;
        _channel = channel;
        _interrupt = new VhostUserInterruptLine(this);
        BindPoll();
    }

    // The first call of a P/Invoke resolves its target, which allocates; made here with nothing to wait on (ppoll of no
    // descriptors and a zero timeout returns at once), so the first interrupt wait of a packet loop allocates nothing.
    private static unsafe void BindPoll()
    {
        Interop.Poll.Timespec zero = default;
        _ = Interop.Poll.PollDescriptors(null, 0, &zero, null);
    }

    /// <summary>The socket path.</summary>
    public string SocketPath => _options.SocketPath;

    /// <summary>Who listens on the socket.</summary>
    public VhostUserSocketMode SocketMode => _options.SocketMode;

    /// <summary>The virtio feature bits the backend offered in GET_FEATURES, unfiltered.</summary>
    public ulong BackendFeatures { get; private set; }

    /// <summary>The protocol features the backend offered (none when it lacks VHOST_USER_F_PROTOCOL_FEATURES).</summary>
    public VhostUserProtocolFeatures BackendProtocolFeatures { get; private set; }

    /// <summary>The protocol features in use: offered, wanted by this frontend, and not disabled by the options.</summary>
    public VhostUserProtocolFeatures NegotiatedProtocolFeatures { get; private set; }

    /// <summary>Queue pairs the backend supports (GET_QUEUE_NUM with PROTOCOL_F_MQ, otherwise 1).</summary>
    public int MaxQueuePairs { get; private set; } = 1;

    /// <summary>True while the connection to the backend is up (as far as last seen).</summary>
    public bool IsConnected => !_channel.IsBroken;

    /// <summary>How many times <see cref="Reconnect"/> established a new session.</summary>
    public int ReconnectCount { get; private set; }

    /// <summary>True when the configuration space came from the backend (GET_CONFIG) rather than being synthesized.</summary>
    public bool ConfigFromBackend => _configFromBackend;

    /// <inheritdoc />
    public string Description => $"vhost-user ({(SocketMode == VhostUserSocketMode.Connect ? "connected to" : "listening on")} {SocketPath})";

    /// <inheritdoc />
    public bool IsLegacy => false;

    /// <inheritdoc />
    public uint DeviceId => NetworkDeviceId;

    /// <inheritdoc />
    public uint VendorId => 0;

    /// <inheritdoc />
    public int LegacyQueueAlign => 0;

    /// <inheritdoc />
    public IInterruptLine? Interrupt => _interrupt;

    /// <summary>Used-buffer signals consumed so far (the line's raise count).</summary>
    internal long InterruptSignals => Interlocked.Read(ref _interruptSignals);

    /// <summary>The call eventfds of the started vrings (a new array whenever the set changes), for the interrupt dispatcher.</summary>
    internal EventFileDescriptor[] CallDescriptors => _calls;

    /// <summary>The current connection (a new one after a reconnection), for the interrupt dispatcher.</summary>
    internal VhostUserChannel Channel => _channel;

    /// <summary>
    /// Connects to the backend (or, in listen mode, waits for it to connect) and runs the session handshake: SET_OWNER,
    /// GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM and GET_CONFIG where offered.
    /// </summary>
    /// <param name="options">Where the backend is and how long to wait for it.</param>
    /// <param name="memory">The shared memory the driver's rings and buffers will live in; must outlive the transport.</param>
    /// <param name="cancellationToken">Cancels waiting for the backend.</param>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.PlatformFailure"/>: no backend, or it went away or answered wrongly;
    /// <see cref="VirtioErrorReason.Timeout"/>: it did not connect or answer in time; <see cref="VirtioErrorReason.QueueUnavailable"/>:
    /// it has fewer queue pairs than <see cref="VhostUserOptions.QueuePairs"/>. Nothing stays open after a failure.
    /// </exception>
    public static VhostUserTransport Connect(VhostUserOptions options, VhostUserDmaAllocator memory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(memory);
        options.Validate();
        VhostUserListener? listener = options.SocketMode == VhostUserSocketMode.Listen ? VhostUserListener.Listen(options.SocketPath) : null;
        VhostUserChannel? channel = null;
        try
        {
            channel = OpenChannel(options, listener, cancellationToken);
            var transport = new VhostUserTransport(options, memory, listener, channel);
            transport.Handshake();
            return transport;
        }
        catch
        {
            channel?.Dispose();
            listener?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Drops the current connection (whatever its state), connects again (or waits for the backend to connect again),
    /// and re-runs the session handshake. The device is then in the reset state: open the net driver again on this
    /// transport. Rings of a net device opened before are no longer known to the backend; dispose that device (before or
    /// after this call) to free their memory.
    /// </summary>
    /// <exception cref="VirtioException">As <see cref="Connect"/>; the transport stays disconnected and may be reconnected again.</exception>
    public void Reconnect(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _channel.Dispose();
            foreach (VhostUserQueue? queue in _queues)
            {
                queue?.IsStarted = false;
            }

            _calls = [];
            StopControlQueue();
            _enabledPairs = 1;
            _status = VirtioDeviceStatus.Reset;
            _driverFeatures = 0;
            _featuresSent = false;
            _channel = OpenChannel(_options, _listener, cancellationToken);
            Volatile.Write(ref _lossHandled, 0);
            Volatile.Write(ref _configChangePending, 0);
            Handshake();
            Interlocked.Increment(ref _configGeneration);
            ReconnectCount++;
        }
    }

    /// <inheritdoc />
    public VirtioDeviceStatus ReadStatus()
    {
        lock (_lock)
        {
            // A device in use whose backend vanished has no status to report; after a reset there is nothing in use.
            if (_status != VirtioDeviceStatus.Reset)
            {
                ThrowIfLost();
            }

            return _status;
        }
    }

    /// <inheritdoc />
    public void WriteStatus(VirtioDeviceStatus status)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (status == VirtioDeviceStatus.Reset)
            {
                ResetDevice();
                return;
            }

            ThrowIfLost();
            if ((status & VirtioDeviceStatus.FeaturesOk) != 0 && (_status & VirtioDeviceStatus.FeaturesOk) == 0 && !SendFeaturesAndMemory())
            {
                // The backend refused the features: FEATURES_OK does not stay set, as a device that refuses does (§3.1.1 step 6).
                status &= ~VirtioDeviceStatus.FeaturesOk;
            }

            if ((NegotiatedProtocolFeatures & VhostUserProtocolFeatures.Status) != 0)
            {
                _ = Command(VhostUserRequest.SetStatus, VhostUserCodec.EncodeU64(VhostUserRequest.SetStatus, (byte)status, _replyAck), []);
                if ((status & VirtioDeviceStatus.FeaturesOk) != 0 && (_status & VirtioDeviceStatus.FeaturesOk) == 0)
                {
                    // With PROTOCOL_F_STATUS the backend itself may clear FEATURES_OK; believe it.
                    ulong reported = VhostUserCodec.DecodeU64(Query(VhostUserRequest.GetStatus, VhostUserCodec.EncodeEmpty(VhostUserRequest.GetStatus), sizeof(ulong)));
                    status &= ((VirtioDeviceStatus)(byte)reported & VirtioDeviceStatus.FeaturesOk) | ~VirtioDeviceStatus.FeaturesOk;
                }
            }

            _status = status;
        }
    }

    /// <inheritdoc />
    public ulong ReadDeviceFeatures()
    {
        lock (_lock)
        {
            ulong offered = BackendFeatures & ~HiddenFeatures;
            if (!_configFromBackend)
            {
                // Their values live in the configuration space, which this backend cannot show.
                offered &= ~(VirtioNetFeatures.Mtu | VirtioNetFeatures.SpeedDuplex);
            }

            offered |= VirtioNetFeatures.Status | ControlQueueFeatures;

            if (_options.MacAddress is not null || (_configFromBackend && (BackendFeatures & VirtioNetFeatures.Mac) != 0))
            {
                offered |= VirtioNetFeatures.Mac;
            }

            return offered;
        }
    }

    /// <inheritdoc />
    public void WriteDriverFeatures(ulong features)
    {
        lock (_lock)
        {
            _driverFeatures = features;
        }
    }

    /// <inheritdoc />
    public int GetQueueSizeMax(int queueIndex) =>
        IsControlQueue(queueIndex) ? ControlQueueSizeMax : IsDataRing(queueIndex) ? MaxQueueSize : 0;

    /// <inheritdoc />
    public bool IsQueueActive(int queueIndex)
    {
        lock (_lock)
        {
            if (IsControlQueue(queueIndex))
            {
                return _controlSplit is not null || _controlPacked is not null;
            }

            return queueIndex >= 0 && queueIndex < _queues.Length && _queues[queueIndex] is { IsStarted: true };
        }
    }

    /// <inheritdoc />
    public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfLost();
            if (!IsDataRing(queueIndex) && !IsControlQueue(queueIndex))
            {
                throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: vring {queueIndex} does not exist; the device has {(ServesControlQueue ? _configPairs : MaxQueuePairs)} queue pair(s) (GET_QUEUE_NUM {MaxQueuePairs}, options {_options.QueuePairs}).");
            }

            if (!_featuresSent)
            {
                throw new InvalidOperationException($"{Description}: queues are set up after FEATURES_OK (§3.1.1 step 7).");
            }

            if (IsControlQueue(queueIndex))
            {
                ActivateControlQueue(size, descriptorArea, driverArea, deviceArea);
                return;
            }

            bool packed = (_driverFeatures & VirtioFeatures.RingPacked) != 0;
            if (size < 1 || size > MaxQueueSize || (!packed && (size & (size - 1)) != 0))
            {
                throw new ArgumentOutOfRangeException(nameof(size), size, $"A {(packed ? "packed" : "split")} vring holds 1 to {MaxQueueSize} entries{(packed ? string.Empty : ", a power of two")}.");
            }

            VhostUserQueue queue = GetOrCreateQueue(queueIndex);
            if (queue.IsStarted)
            {
                throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: vring {queueIndex} is already started.");
            }

            // §2.7 (split) and §2.8 (packed): the areas' lengths, so that each is checked to lie inside the shared region.
            ulong n = (ulong)size;
            (ulong descLength, ulong driverLength, ulong deviceLength) = packed ? (16 * n, 4UL, 4UL) : (16 * n, 6 + (2 * n), 6 + (8 * n));
            ulong descUser = UserAddress(descriptorArea, descLength, queueIndex, "descriptor table");
            ulong availUser = UserAddress(driverArea, driverLength, queueIndex, "driver area");
            ulong usedUser = UserAddress(deviceArea, deviceLength, queueIndex, "device area");

            uint index = (uint)queueIndex;
            _ = Command(VhostUserRequest.SetVringNum, VhostUserCodec.EncodeVringState(VhostUserRequest.SetVringNum, index, (uint)size, _replyAck), [], $"for vring {index} (size {size})");

            // A fresh ring starts at 0; a packed ring's base also carries the wrap counters, which start at 1 (§2.8.1).
            uint initialBase = packed ? 1u << 15 : 0u;
            _ = Command(VhostUserRequest.SetVringBase, VhostUserCodec.EncodeVringState(VhostUserRequest.SetVringBase, index, initialBase, _replyAck), [], $"for vring {index}");
            _ = Command(VhostUserRequest.SetVringAddr, VhostUserCodec.EncodeVringAddress(index, descUser, usedUser, availUser, deviceArea, _replyAck), [], $"for vring {index} (descriptors at 0x{descriptorArea:x})");
            _ = Command(VhostUserRequest.SetVringCall, VhostUserCodec.EncodeU64(VhostUserRequest.SetVringCall, index, _replyAck), [queue.Call.Handle], $"for vring {index}");
            _ = Command(VhostUserRequest.SetVringKick, VhostUserCodec.EncodeU64(VhostUserRequest.SetVringKick, index, _replyAck), [queue.Kick.Handle], $"for vring {index}");
            if ((BackendFeatures & VhostUserFeatures.ProtocolFeatures) != 0 && queueIndex < 2 * _enabledPairs)
            {
                // With F_PROTOCOL_FEATURES a ring starts disabled (vhost-user.rst, "Ring states"). Under MQ only the first
                // pair is enabled until the driver's VQ_PAIRS_SET (§5.1.6.5.5: the device starts with one pair).
                _ = Command(VhostUserRequest.SetVringEnable, VhostUserCodec.EncodeVringState(VhostUserRequest.SetVringEnable, index, 1, _replyAck), [], $"for vring {index}");
            }

            queue.Size = size;
            queue.DescriptorArea = descriptorArea;
            queue.DriverArea = driverArea;
            queue.DeviceArea = deviceArea;
            queue.IsStarted = true;
            RebuildCallSet();
        }
    }

    /// <inheritdoc />
    public void DeactivateQueue(int queueIndex)
    {
        lock (_lock)
        {
            if (IsControlQueue(queueIndex))
            {
                StopControlQueue();
                return;
            }

            if (queueIndex >= 0 && queueIndex < _queues.Length && _queues[queueIndex] is { IsStarted: true } queue)
            {
                StopQueue(queue);
                RebuildCallSet();
            }
        }
    }

    /// <inheritdoc />
    public void Notify(int queueIndex)
    {
        if (_channel.IsBroken)
        {
            ThrowBackendGone();
        }

        EventFileDescriptor?[] kicks = _kicks;
        if (IsControlQueue(queueIndex))
        {
            // The transport is the control queue's device: the command runs here, before Notify returns.
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                ServeControlQueue();
            }

            return;
        }

        if ((uint)queueIndex >= (uint)kicks.Length || kicks[queueIndex] is not { } kick)
        {
            ThrowQueueNotStarted(queueIndex);
            return;
        }

        kick.Signal();
    }

    /// <inheritdoc />
    public InterruptCause ReadAndAcknowledgeInterrupt()
    {
        InterruptCause cause = InterruptCause.None;
        foreach (EventFileDescriptor call in _calls)
        {
            ulong signals = call.Consume();
            if (signals != 0)
            {
                cause |= InterruptCause.UsedBuffer;
                Interlocked.Add(ref _interruptSignals, (long)signals);
            }
        }

        if (Interlocked.Exchange(ref _configChangePending, 0) != 0)
        {
            cause |= InterruptCause.ConfigurationChange;
        }

        return cause;
    }

    /// <inheritdoc />
    public uint ReadConfigGeneration() => (uint)Volatile.Read(ref _configGeneration);

    /// <inheritdoc />
    public byte ReadConfig8(int offset)
    {
        Span<byte> bytes = stackalloc byte[1];
        ReadConfig(offset, bytes);
        return bytes[0];
    }

    /// <inheritdoc />
    public ushort ReadConfig16(int offset)
    {
        Span<byte> bytes = stackalloc byte[2];
        ReadConfig(offset, bytes);
        return BinaryPrimitives.ReadUInt16LittleEndian(bytes);
    }

    /// <inheritdoc />
    public uint ReadConfig32(int offset)
    {
        Span<byte> bytes = stackalloc byte[4];
        ReadConfig(offset, bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    /// <summary>Configuration writes (the legacy MAC write) have no vhost-user message for net devices; refused.</summary>
    public void WriteConfig8(int offset, byte value) =>
        throw new NotSupportedException($"{Description}: the configuration space is read-only over vhost-user (offset {offset}).");

    /// <summary>Closes the connection (the backend tears its side down), the listener and the eventfds. The memory stays the caller's.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _interrupt.Detach();
            _channel.Dispose();
            _listener?.Dispose();
            _kicks = [];
            _calls = [];
            foreach (VhostUserQueue? queue in _queues)
            {
                queue?.Dispose();
            }
        }
    }

    private void ReadConfig(int offset, Span<byte> destination)
    {
        if (offset < 0 || offset + destination.Length > NetConfigLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Configuration offset {offset} (+{destination.Length}) lies outside the {NetConfigLength} bytes of {Description}.");
        }

        byte[] config = _config;
        config.AsSpan(offset, destination.Length).CopyTo(destination);

        // The status field is the transport's: link up while the backend is connected.
        int statusStart = VirtioNetConfig.StatusOffset;
        if (offset < statusStart + 2 && offset + destination.Length > statusStart && !(_configFromBackend && (BackendFeatures & VirtioNetFeatures.Status) != 0))
        {
            Span<byte> status = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(status, LinkStatus());
            for (int i = 0; i < destination.Length; i++)
            {
                int at = offset + i - statusStart;
                if (at is 0 or 1)
                {
                    destination[i] = status[at];
                }
            }
        }
    }

    private ushort LinkStatus()
    {
        VhostUserChannel channel = _channel;
        if (channel.IsBroken || channel.CheckPeerClosed())
        {
            OnBackendLost(channel);
            return 0;
        }

        return VirtioNetConfig.StatusLinkUp;
    }

    private ulong UserAddress(ulong deviceAddress, ulong length, int queueIndex, string area)
    {
        if (!_memory.TryGetUserAddress(deviceAddress, length, out ulong user))
        {
            throw new ArgumentException(
                $"{Description}: the {area} of vring {queueIndex} at 0x{deviceAddress:x} (+{length}) lies outside the memory shared with the backend " +
                $"(0x{_memory.BaseAddress:x}, {_memory.Size} bytes): allocate rings from the transport's VhostUserDmaAllocator.");
        }

        return user;
    }

    private VhostUserQueue GetOrCreateQueue(int index)
    {
        if (index >= _queues.Length)
        {
            Array.Resize(ref _queues, 2 * MaxQueuePairs);
        }

        if (_queues[index] is not { } queue)
        {
            queue = new VhostUserQueue(index);
            _queues[index] = queue;
            var kicks = new EventFileDescriptor?[_queues.Length];
            for (int i = 0; i < _queues.Length; i++)
            {
                kicks[i] = _queues[i]?.Kick;
            }

            _kicks = kicks;
        }

        return queue;
    }

    [DoesNotReturn]
    private void ThrowQueueNotStarted(int queueIndex) =>
        throw new InvalidOperationException($"{Description}: vring {queueIndex} is not started; nothing to notify.");
}
