using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

/// <summary>The session with the backend: handshake, requests and their acknowledgements, reset, and loss of the backend.</summary>
public sealed partial class VhostUserTransport
{
    private static VhostUserChannel OpenChannel(VhostUserOptions options, VhostUserListener? listener, CancellationToken cancellationToken) =>
        listener is null
            ? VhostUserChannel.Connect(options.SocketPath, options.ConnectTimeout, cancellationToken)
            : listener.Accept(options.ConnectTimeout, cancellationToken);

    // The session handshake, run on every new connection. Ref: vhost-user.rst, "Communication" and "Multiple queue support".
    private void Handshake()
    {
        _replyAck = false;
        _ = Command(VhostUserRequest.SetOwner, VhostUserCodec.EncodeEmpty(VhostUserRequest.SetOwner), []);
        BackendFeatures = VhostUserCodec.DecodeU64(Query(VhostUserRequest.GetFeatures, VhostUserCodec.EncodeEmpty(VhostUserRequest.GetFeatures), sizeof(ulong)));
        BackendProtocolFeatures = VhostUserProtocolFeatures.None;
        NegotiatedProtocolFeatures = VhostUserProtocolFeatures.None;
        if ((BackendFeatures & VhostUserFeatures.ProtocolFeatures) != 0)
        {
            BackendProtocolFeatures = (VhostUserProtocolFeatures)VhostUserCodec.DecodeU64(
                Query(VhostUserRequest.GetProtocolFeatures, VhostUserCodec.EncodeEmpty(VhostUserRequest.GetProtocolFeatures), sizeof(ulong)));
            NegotiatedProtocolFeatures = BackendProtocolFeatures & WantedProtocolFeatures & ~_options.DisabledProtocolFeatures;

            // Sent without need_reply: REPLY_ACK takes effect once this message has been processed.
            _ = Command(VhostUserRequest.SetProtocolFeatures, VhostUserCodec.EncodeU64(VhostUserRequest.SetProtocolFeatures, (ulong)NegotiatedProtocolFeatures), []);
            _replyAck = (NegotiatedProtocolFeatures & VhostUserProtocolFeatures.ReplyAck) != 0;
        }

        MaxQueuePairs = 1;
        if ((NegotiatedProtocolFeatures & VhostUserProtocolFeatures.Mq) != 0)
        {
            ulong pairs = VhostUserCodec.DecodeU64(Query(VhostUserRequest.GetQueueNum, VhostUserCodec.EncodeEmpty(VhostUserRequest.GetQueueNum), sizeof(ulong)));
            if (pairs is 0 or > 128)
            {
                throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{Description}: GET_QUEUE_NUM answered {pairs}; 1 to 128 queue pairs fit vhost-user's 8-bit vring index.");
            }

            MaxQueuePairs = (int)pairs;
        }

        if (MaxQueuePairs < _options.QueuePairs)
        {
            throw new VirtioException(
                VirtioErrorReason.QueueUnavailable,
                $"{Description}: the backend offers {MaxQueuePairs} queue pair(s); {_options.QueuePairs} were asked for.");
        }

        // max_virtqueue_pairs: what both the backend and the caller allow. Above one the transport serves the control
        // queue, whose VQ_PAIRS_SET needs SET_VRING_ENABLE (PROTOCOL_FEATURES) to carry it out.
        _configPairs = (BackendFeatures & VhostUserFeatures.ProtocolFeatures) != 0 ? Math.Min(MaxQueuePairs, _options.QueuePairs) : 1;
        _enabledPairs = 1;
        LoadConfig();
    }

    // The configuration space: the backend's when it has one (PROTOCOL_F_CONFIG), otherwise synthesized.
    private void LoadConfig()
    {
        byte[] config = new byte[NetConfigLength];
        bool fromBackend = false;
        if ((NegotiatedProtocolFeatures & VhostUserProtocolFeatures.Config) != 0)
        {
            byte[] payload = Query(VhostUserRequest.GetConfig, VhostUserCodec.EncodeConfigRequest(0, NetConfigLength), -1);

            // vhost-user.rst, GET_CONFIG: a zero-length payload is the backend saying it has none; fall back.
            if (payload.Length != 0)
            {
                config = VhostUserCodec.DecodeConfig(payload, 0, NetConfigLength, _channel.Peer);
                fromBackend = true;
            }
        }

        if (!fromBackend)
        {
            _options.MacAddress?.CopyTo(config, VirtioNetConfig.MacOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(config.AsSpan(VirtioNetConfig.SpeedOffset), uint.MaxValue);
            config[VirtioNetConfig.DuplexOffset] = 0xff;
        }
        else if (_options.MacAddress is { } mac && (BackendFeatures & VirtioNetFeatures.Mac) == 0)
        {
            mac.CopyTo(config, VirtioNetConfig.MacOffset);
        }

        // The pairs the transport serves, whatever the backend's own field says (its control queue is ours, §5.1.4).
        BinaryPrimitives.WriteUInt16LittleEndian(config.AsSpan(VirtioNetConfig.MaxVirtqueuePairsOffset), (ushort)_configPairs);
        _config = config;
        _configFromBackend = fromBackend;
    }

    // FEATURES_OK: the accepted features (without the bits served here) and then the memory table. False when refused.
    private bool SendFeaturesAndMemory()
    {
        ulong toBackend = (_driverFeatures & BackendFeatures & ~HiddenFeatures) | (BackendFeatures & VhostUserFeatures.ProtocolFeatures);

        // MQ is served here but also told to the backend when it offered it, as QEMU does: DPDK drops every ring beyond
        // the first pair of a device whose features lack MQ.
        toBackend |= _driverFeatures & BackendFeatures & ControlQueueFeatures & VirtioNetFeatures.Mq;
        ulong ack = Command(VhostUserRequest.SetFeatures, VhostUserCodec.EncodeU64(VhostUserRequest.SetFeatures, toBackend, _replyAck), [], null, refusalThrows: false);
        if (ack != 0)
        {
            return false;
        }

        var region = new VhostUserMemoryRegion(_memory.BaseAddress, (ulong)_memory.Size, _memory.BaseAddress, 0);
        _ = Command(
            VhostUserRequest.SetMemTable,
            VhostUserCodec.EncodeMemoryTable([region], _replyAck),
            [_memory.MemoryDescriptor],
            $"(one region of {_memory.Size} bytes at 0x{_memory.BaseAddress:x}, from a memfd)");
        _featuresSent = true;
        return true;
    }

    // §3.3.1 mapped onto vhost-user: stop every started ring (GET_VRING_BASE returns once the backend has let go of it).
    private void ResetDevice()
    {
        foreach (VhostUserQueue? queue in _queues)
        {
            if (queue is { IsStarted: true })
            {
                StopQueue(queue);
            }
        }

        RebuildCallSet();
        StopControlQueue();
        _enabledPairs = 1;
        if (!_channel.IsBroken && (NegotiatedProtocolFeatures & VhostUserProtocolFeatures.Status) != 0 && _status != VirtioDeviceStatus.Reset)
        {
            TryIgnoringLoss(() => Command(VhostUserRequest.SetStatus, VhostUserCodec.EncodeU64(VhostUserRequest.SetStatus, 0, _replyAck), []));
        }

        _status = VirtioDeviceStatus.Reset;
        _driverFeatures = 0;
        _featuresSent = false;
    }

    private void StopQueue(VhostUserQueue queue)
    {
        queue.IsStarted = false;
        if (_channel.IsBroken)
        {
            // Nobody is left to stop: the backend's side of the ring went with its connection.
            return;
        }

        uint index = (uint)queue.Index;
        TryIgnoringLoss(() =>
        {
            if ((BackendFeatures & VhostUserFeatures.ProtocolFeatures) != 0)
            {
                _ = Command(VhostUserRequest.SetVringEnable, VhostUserCodec.EncodeVringState(VhostUserRequest.SetVringEnable, index, 0, _replyAck), [], $"for vring {index}");
            }

            byte[] reply = Query(VhostUserRequest.GetVringBase, VhostUserCodec.EncodeVringState(VhostUserRequest.GetVringBase, index, 0), VhostUserCodec.VringStateLength);
            (uint replyIndex, uint num) = VhostUserCodec.DecodeVringState(reply);
            if (replyIndex != index)
            {
                throw new VirtioException(VirtioErrorReason.PlatformFailure, $"{_channel.Peer} answered GET_VRING_BASE for vring {index} with vring {replyIndex}.");
            }

            queue.LastAvailIndex = num;
        });
    }

    // A reset must complete even when the backend is gone, so that the driver can free its memory and start over.
    private void TryIgnoringLoss(Action action)
    {
        try
        {
            action();
        }
        catch (VirtioException) when (_channel.IsBroken)
        {
            // The backend went away meanwhile: it no longer touches the rings, which is all a reset must ensure.
        }
    }

    // Sends a request that has no reply of its own; with REPLY_ACK reads the acknowledgement and returns it (0 = success).
    private ulong Command(VhostUserRequest request, byte[] message, ReadOnlySpan<SafeHandle> descriptors, string? what = null, bool refusalThrows = true)
    {
        VhostUserChannel channel = _channel;
        try
        {
            channel.Send(message, descriptors, request);
            if (!_replyAck || request is VhostUserRequest.SetOwner or VhostUserRequest.SetProtocolFeatures)
            {
                return 0;
            }

            ulong ack = VhostUserCodec.DecodeU64(channel.Receive(request, sizeof(ulong), _options.ReplyTimeout));
            if (ack != 0 && refusalThrows)
            {
                throw new VirtioException(
                    VirtioErrorReason.PlatformFailure,
                    $"{channel.Peer} refused {VhostUserCodec.Name(request)}{(what is null ? string.Empty : " " + what)} (REPLY_ACK {ack}).");
            }

            return ack;
        }
        catch (VirtioException) when (channel.IsBroken)
        {
            OnBackendLost(channel);
            throw;
        }
    }

    // Sends a request that has a reply and returns the validated payload.
    private byte[] Query(VhostUserRequest request, byte[] message, int replySize)
    {
        VhostUserChannel channel = _channel;
        try
        {
            channel.Send(message, [], request);
            return channel.Receive(request, replySize, _options.ReplyTimeout);
        }
        catch (VirtioException) when (channel.IsBroken)
        {
            OnBackendLost(channel);
            throw;
        }
    }

    // The link goes down and the driver hears of it as a configuration change (§2.5.1, §5.1.4.2).
    private void OnBackendLost(VhostUserChannel channel)
    {
        if (channel != _channel || Interlocked.Exchange(ref _lossHandled, 1) != 0)
        {
            return;
        }

        Interlocked.Increment(ref _configGeneration);
        Volatile.Write(ref _configChangePending, 1);

        // A configuration change is an interrupt: a driver waiting through the dispatcher hears of it now.
        _interrupt.OnReady();
    }

    private void ThrowIfLost()
    {
        VhostUserChannel channel = _channel;
        if (channel.IsBroken || channel.CheckPeerClosed())
        {
            OnBackendLost(channel);
            channel.ThrowIfBroken();
        }
    }

    [DoesNotReturn]
    private void ThrowBackendGone()
    {
        VhostUserChannel channel = _channel;
        OnBackendLost(channel);
        channel.ThrowIfBroken();
        throw new UnreachableException();
    }
}
