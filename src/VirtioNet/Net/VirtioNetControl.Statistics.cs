using VirtioNet.Core;
using VirtioNet.Net.Control;
using VirtioNet.Net.Statistics;

namespace VirtioNet.Net;

/// <summary>
/// The device's own statistics (VIRTIO_NET_F_DEVICE_STATS): which types it keeps (VIRTIO_NET_CTRL_STATS_QUERY) and
/// their values per queue (VIRTIO_NET_CTRL_STATS_GET), read through the control queue with a device-writable reply.
/// Ref: virtio v1.3 §5.1.6.5.11 (Device Statistics).
/// </summary>
public sealed partial class VirtioNetControl
{
    // The answer of VIRTIO_NET_CTRL_STATS_QUERY, once asked; it does not change while the device runs.
    private DeviceStatisticsTypes? _deviceStatisticsTypes;

    /// <summary>True when VIRTIO_NET_F_DEVICE_STATS was negotiated (and the control queue with it).</summary>
    public bool HasDeviceStatistics => (NegotiatedFeatures & VirtioNetFeatures.DeviceStats) != 0 && _control is not null;

    /// <summary>
    /// The statistics types the device keeps (VIRTIO_NET_CTRL_STATS_QUERY), asked once and remembered. Bits the spec
    /// does not define are dropped.
    /// </summary>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_DEVICE_STATS, the control queue's failures, or a reply shorter than the structure.</exception>
    public DeviceStatisticsTypes QueryDeviceStatisticsTypes()
    {
        lock (_lock)
        {
            return QueryDeviceStatisticsTypesLocked();
        }
    }

    /// <summary>
    /// Reads the device's statistics of every queue set up and of the control queue (VIRTIO_NET_CTRL_STATS_GET): each
    /// queue is asked for the types the device keeps that are valid for it (§5.1.6.5.11: receive types for receive
    /// queues, transmit types for transmit queues, the controlq type for the control queue, and the checksum and GSO
    /// types only with their features negotiated). Many queues take several commands.
    /// </summary>
    /// <exception cref="VirtioException">
    /// Without VIRTIO_NET_F_DEVICE_STATS; the control queue's failures; <see cref="VirtioErrorReason.DeviceMisbehaved"/>
    /// for a malformed reply (a block whose size is wrong or runs past the reply, a block nobody asked for).
    /// </exception>
    public DeviceStatistics GetDeviceStatistics()
    {
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.DeviceStats, "VIRTIO_NET_F_DEVICE_STATS", "device statistics");
            DeviceStatisticsTypes supported = QueryDeviceStatisticsTypesLocked();
            var requests = new List<(int Queue, DeviceStatisticsTypes Types)>();
            for (int pair = 0; pair < QueuePairs; pair++)
            {
                AddRequest(requests, _device.Pairs[pair].ReceiveQueueIndex, supported & ValidReceiveTypes());
                AddRequest(requests, _device.Pairs[pair].TransmitQueueIndex, supported & ValidTransmitTypes());
            }

            AddRequest(requests, control.QueueIndex, supported & DeviceStatisticsTypes.Cvq);

            var blocks = new List<DeviceStatisticsBlock>();
            byte[] payload = new byte[control.MaxPayloadLength];
            byte[] reply = new byte[VirtioNetControlQueue.MaxReplyLength];
            int next = 0;
            while (next < requests.Count)
            {
                // As many queues per command as the payload and the reply buffer hold (§5.1.6.5.11: the reply buffer
                // must have room for every block asked for).
                var batch = new Dictionary<int, DeviceStatisticsTypes>();
                int payloadLength = 0;
                int replyLength = 0;
                while (next < requests.Count)
                {
                    (int queue, DeviceStatisticsTypes types) = requests[next];
                    int blockLength = DeviceStatisticsPayloads.ReplyLength(types);
                    if (payloadLength + DeviceStatisticsPayloads.QueueRequestLength > payload.Length || replyLength + blockLength > reply.Length)
                    {
                        break;
                    }

                    payloadLength += DeviceStatisticsPayloads.WriteQueueRequest(payload.AsSpan(payloadLength), queue, types);
                    replyLength += blockLength;
                    batch[queue] = types;
                    next++;
                }

                int written = control.ExecuteWithReply(VirtioNetControlClass.Stats, VirtioNetControlCommands.StatsGet, payload.AsSpan(0, payloadLength), reply.AsSpan(0, replyLength));
                DeviceStatisticsPayloads.ParseReply(reply.AsSpan(0, written), batch, _device.Transport.Description, blocks);
            }

            return new DeviceStatistics { SupportedTypes = supported, Blocks = blocks };
        }
    }

    private static void AddRequest(List<(int Queue, DeviceStatisticsTypes Types)> requests, int queueIndex, DeviceStatisticsTypes types)
    {
        if (types != DeviceStatisticsTypes.None)
        {
            requests.Add((queueIndex, types));
        }
    }

    private DeviceStatisticsTypes QueryDeviceStatisticsTypesLocked()
    {
        VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.DeviceStats, "VIRTIO_NET_F_DEVICE_STATS", "device statistics");
        if (_deviceStatisticsTypes is { } known)
        {
            return known;
        }

        Span<byte> reply = stackalloc byte[DeviceStatisticsPayloads.CapabilitiesLength];
        int written = control.ExecuteWithReply(VirtioNetControlClass.Stats, VirtioNetControlCommands.StatsQuery, [], reply);
        DeviceStatisticsTypes types = DeviceStatisticsPayloads.ReadCapabilities(reply[..written], _device.Transport.Description);
        _deviceStatisticsTypes = types;
        return types;
    }

    // §5.1.6.5.11: the checksum and GSO blocks may be asked for only with their features negotiated.
    private DeviceStatisticsTypes ValidReceiveTypes()
    {
        DeviceStatisticsTypes types = DeviceStatisticsTypes.RxBasic | DeviceStatisticsTypes.RxSpeed;
        if ((NegotiatedFeatures & VirtioNetFeatures.GuestCsum) != 0)
        {
            types |= DeviceStatisticsTypes.RxCsum;
        }

        if ((NegotiatedFeatures & (VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6)) != 0)
        {
            types |= DeviceStatisticsTypes.RxGso;
        }

        return types;
    }

    private DeviceStatisticsTypes ValidTransmitTypes()
    {
        DeviceStatisticsTypes types = DeviceStatisticsTypes.TxBasic | DeviceStatisticsTypes.TxSpeed;
        if ((NegotiatedFeatures & VirtioNetFeatures.Csum) != 0)
        {
            types |= DeviceStatisticsTypes.TxCsum;
        }

        if ((NegotiatedFeatures & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUso)) != 0)
        {
            types |= DeviceStatisticsTypes.TxGso;
        }

        return types;
    }
}
