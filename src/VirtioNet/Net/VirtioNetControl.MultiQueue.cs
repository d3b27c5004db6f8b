using VirtioNet.Core;
using VirtioNet.Net.Control;
using VirtioNet.Net.FlowControl;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>
/// Multi-queue control: the active queue pairs (VIRTIO_NET_F_MQ), RSS steering and hash reporting (RSS, HASH_REPORT),
/// notification coalescing (NOTF_COAL, VQ_NOTF_COAL), and where the driver sends: the 802.1p priority → pair map and
/// a flow's transmit pair. Ref: virtio v1.2 §5.1.6.5.5-§5.1.6.5.7; virtio v1.3 §5.1.6.5.9.
/// </summary>
public sealed partial class VirtioNetControl
{
    // Pairs the device is steering to, as last told (§5.1.6.5.5: it starts with one).
    private int _activeQueuePairs = 1;

    // The RSS configuration sent last, or null while steering is the device's automatic one.
    private RssConfiguration? _rss;

    // The hash reporting configuration sent last (VIRTIO_NET_CTRL_MQ_HASH_CONFIG), without RSS, and its key.
    private RssHashTypes _hashReportTypes;

    private byte[] _hashReportKey = [];

    // True after DisableRss until the next VQ_PAIRS_SET or RSS configuration: the device holds an RSS configuration with
    // no hash types (every frame to receiveq1), which is not its reset state, so recovery sends it again.
    private bool _rssDisabled;

    // Per virtqueue (by index, 0:rx0 1:tx0 ...), the coalescing the caller set with VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET and
    // that is still in effect: a later TX_SET or RX_SET replaces it for every queue of its direction (§5.1.6.5.9: the
    // device applies the last parameters set for a queue, whatever the command). Empty until the first VQ_SET.
    private NotificationCoalescing?[] _queueCoalescing = [];

    // The priority map TrySendByPriority uses; null until set, then spread over the active pairs by default.
    private PriorityQueueMap? _priorityMap;

    /// <summary>The pairs the device steers received frames to and the driver transmits on (1 until changed).</summary>
    public int ActiveQueuePairs => Volatile.Read(ref _activeQueuePairs);

    /// <summary>The RSS configuration in effect, or null when RSS is off.</summary>
    public RssConfiguration? Rss => Volatile.Read(ref _rss);

    /// <summary>True when every received frame carries a hash (VIRTIO_NET_F_HASH_REPORT was negotiated).</summary>
    public bool ReportsHash => (NegotiatedFeatures & VirtioNetFeatures.HashReport) != 0;

    /// <summary>The hash types reported without RSS (<see cref="ConfigureHashReport"/>), or those of <see cref="Rss"/>.</summary>
    public RssHashTypes HashReportTypes => Rss?.HashTypes ?? _hashReportTypes;

    /// <summary>The transmit coalescing set last, or null (the device's default: a notification per packet).</summary>
    public NotificationCoalescing? TransmitCoalescing { get; private set; }

    /// <summary>The receive coalescing set last, or null (the device's default).</summary>
    public NotificationCoalescing? ReceiveCoalescing { get; private set; }

    /// <summary>The map from 802.1p priority to queue pair; by default the priorities spread over the active pairs.</summary>
    /// <exception cref="ArgumentException">Set to a map over more pairs than are active.</exception>
    public PriorityQueueMap PriorityMap
    {
        get => Volatile.Read(ref _priorityMap) is { } map && map.QueuePairs <= ActiveQueuePairs ? map : PriorityQueueMap.Spread(ActiveQueuePairs);
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.QueuePairs > ActiveQueuePairs)
            {
                throw new ArgumentException($"The priority map spreads over {value.QueuePairs} queue pairs; {ActiveQueuePairs} are active.", nameof(value));
            }

            Volatile.Write(ref _priorityMap, value);
        }
    }

    /// <summary>
    /// Changes how many pairs the device uses (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); this also turns RSS off, and the
    /// device goes back to its automatic steering (§5.1.6.5.6). Ref: virtio v1.2 §5.1.6.5.5.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 1 to <see cref="QueuePairs"/>.</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_MQ, or the control queue's failures.</exception>
    public void SetActiveQueuePairs(int pairs)
    {
        ValidateActivePairs(pairs);
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.Mq, "VIRTIO_NET_F_MQ", "changing the number of queue pairs");
            Span<byte> payload = stackalloc byte[MultiQueuePayloads.VqPairsSetLength];
            MultiQueuePayloads.WriteVqPairsSet(payload, pairs);
            control.Execute(VirtioNetControlClass.Mq, VirtioNetControlCommands.MqVqPairsSet, payload);
            Volatile.Write(ref _activeQueuePairs, pairs);
            Volatile.Write(ref _rss, null);
            _rssDisabled = false;
        }
    }

    /// <summary>
    /// Sends an RSS configuration (VIRTIO_NET_CTRL_MQ_RSS_CONFIG), after checking it against the device's limits and
    /// the pairs set up. The active pairs become the highest queue the table or unclassified queue names, plus one
    /// (max_tx_vq), at least the pairs active before. Ref: virtio v1.2 §5.1.6.5.7.1.
    /// </summary>
    /// <exception cref="ArgumentException">The configuration breaks a limit (table size, key size, hash types, queue).</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_RSS, or the control queue's failures.</exception>
    public void ConfigureRss(RssConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.Rss, "VIRTIO_NET_F_RSS", "RSS");
            configuration.Validate(Config, QueuePairs);
            int used = configuration.UnclassifiedQueue + 1;
            foreach (ushort queue in configuration.IndirectionTable.Span)
            {
                used = Math.Max(used, queue + 1);
            }

            int pairs = Math.Max(used, ActiveQueuePairs);
            byte[] payload = new byte[MultiQueuePayloads.RssConfigLength(configuration)];
            MultiQueuePayloads.WriteRssConfig(payload, configuration, pairs);
            control.Execute(VirtioNetControlClass.Mq, VirtioNetControlCommands.MqRssConfig, payload);
            Volatile.Write(ref _activeQueuePairs, pairs);
            Volatile.Write(ref _rss, configuration);
            _rssDisabled = false;
        }
    }

    /// <summary>
    /// Turns RSS steering off: an RSS configuration with no hash types sends every frame to receiveq1 (the
    /// unclassified queue), keeping the active pairs for transmit.
    /// </summary>
    /// <inheritdoc cref="ConfigureRss" path="/exception"/>
    public void DisableRss()
    {
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.Rss, "VIRTIO_NET_F_RSS", "RSS");
            var off = new RssConfiguration { HashTypes = RssHashTypes.None, Key = ReadOnlyMemory<byte>.Empty, IndirectionTable = new ushort[] { 0 } };
            byte[] payload = new byte[MultiQueuePayloads.RssConfigLength(off)];
            MultiQueuePayloads.WriteRssConfig(payload, off, ActiveQueuePairs);
            control.Execute(VirtioNetControlClass.Mq, VirtioNetControlCommands.MqRssConfig, payload);
            Volatile.Write(ref _rss, null);
            _rssDisabled = true;
        }
    }

    /// <summary>
    /// Configures hash reporting without RSS steering (VIRTIO_NET_CTRL_MQ_HASH_CONFIG): the device computes the hash of
    /// the given types with <paramref name="key"/> and reports it beside each frame. With VIRTIO_NET_F_RSS negotiated
    /// use <see cref="ConfigureRss"/>, which configures the reported hash too. Ref: virtio v1.2 §5.1.6.5.6.4.
    /// </summary>
    /// <exception cref="ArgumentException">Types the device does not support, or a key longer than rss_max_key_size (or empty with types).</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_HASH_REPORT, with RSS negotiated, or the control queue's failures.</exception>
    public void ConfigureHashReport(RssHashTypes hashTypes, ReadOnlySpan<byte> key)
    {
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.HashReport, "VIRTIO_NET_F_HASH_REPORT", "hash reporting");
            if ((NegotiatedFeatures & VirtioNetFeatures.Rss) != 0)
            {
                throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{_device.Transport.Description}: VIRTIO_NET_F_RSS was negotiated, so the reported hash is configured with the RSS configuration (ConfigureRss), not VIRTIO_NET_CTRL_MQ_HASH_CONFIG.");
            }

            var unsupported = (RssHashTypes)((uint)hashTypes & ~Config.SupportedHashTypes);
            if (unsupported != RssHashTypes.None)
            {
                throw new ArgumentException($"The device does not support the hash types {unsupported} (supported_hash_types is {(RssHashTypes)Config.SupportedHashTypes}).", nameof(hashTypes));
            }

            if (key.Length > Config.RssMaxKeySize || (key.IsEmpty && hashTypes != RssHashTypes.None))
            {
                throw new ArgumentException($"The hash key has {key.Length} bytes; the device takes 1 to {Config.RssMaxKeySize} (rss_max_key_size) when hashing.", nameof(key));
            }

            byte[] payload = new byte[MultiQueuePayloads.HashConfigLength(key.Length)];
            MultiQueuePayloads.WriteHashConfig(payload, hashTypes, key);
            control.Execute(VirtioNetControlClass.Mq, VirtioNetControlCommands.MqHashConfig, payload);
            _hashReportTypes = hashTypes;
            _hashReportKey = key.ToArray();
        }
    }

    /// <summary>
    /// Sets transmit notification coalescing for all transmit queues (VIRTIO_NET_CTRL_NOTF_COAL_TX_SET); it replaces what
    /// <see cref="SetQueueCoalescing"/> set for any of them (§5.1.6.5.9).
    /// </summary>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_NOTF_COAL, or the control queue's failures.</exception>
    public void SetTransmitCoalescing(NotificationCoalescing coalescing)
    {
        lock (_lock)
        {
            SendCoalescing(VirtioNetControlCommands.NotfCoalTxSet, coalescing);
            TransmitCoalescing = coalescing;
            ForgetQueueCoalescing(transmit: true);
        }
    }

    /// <summary>
    /// Sets receive notification coalescing for all receive queues (VIRTIO_NET_CTRL_NOTF_COAL_RX_SET); it replaces what
    /// <see cref="SetQueueCoalescing"/> set for any of them (§5.1.6.5.9).
    /// </summary>
    /// <inheritdoc cref="SetTransmitCoalescing" path="/exception"/>
    public void SetReceiveCoalescing(NotificationCoalescing coalescing)
    {
        lock (_lock)
        {
            SendCoalescing(VirtioNetControlCommands.NotfCoalRxSet, coalescing);
            ReceiveCoalescing = coalescing;
            ForgetQueueCoalescing(transmit: false);
        }
    }

    /// <summary>
    /// Sets notification coalescing of one virtqueue (VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET), by its index (0:rx0 1:tx0 ...).
    /// The driver keeps it until a later <see cref="SetTransmitCoalescing"/> or <see cref="SetReceiveCoalescing"/> of the
    /// queue's direction replaces it, and sends it again after <see cref="VirtioNetDevice.Recover"/> and <see cref="VirtioNetDevice.ResetQueue"/> (a
    /// device falls back to the direction's coalescing on both, §5.1.6.5.9).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not the index of a receive or transmit queue set up.</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_VQ_NOTF_COAL, or the control queue's failures.</exception>
    public void SetQueueCoalescing(int queueIndex, NotificationCoalescing coalescing)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(queueIndex, 2 * QueuePairs);
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.VqNotfCoal, "VIRTIO_NET_F_VQ_NOTF_COAL", "per-queue notification coalescing");
            Span<byte> payload = stackalloc byte[MultiQueuePayloads.VqCoalescingLength];
            MultiQueuePayloads.WriteVqCoalescing(payload, queueIndex, coalescing);
            control.Execute(VirtioNetControlClass.NotfCoal, VirtioNetControlCommands.NotfCoalVqSet, payload);
            if (_queueCoalescing.Length == 0)
            {
                _queueCoalescing = new NotificationCoalescing?[2 * QueuePairs];
            }

            _queueCoalescing[queueIndex] = coalescing;
        }
    }

    // Recovery and single-queue reset: sends VQ_SET again for each queue whose own coalescing the caller set (for one
    // queue, or all with -1), in queue order. Queues of pairs that are not active are skipped: the device must refuse
    // VQ_SET for a queue that is not enabled (§5.1.6.5.9), and their setting stays kept.
    internal void RestoreQueueCoalescing(int onlyQueue)
    {
        int enabledQueues = 2 * ActiveQueuePairs;
        for (int index = 0; index < _queueCoalescing.Length && index < enabledQueues; index++)
        {
            if (_queueCoalescing[index] is { } coalescing && (onlyQueue < 0 || onlyQueue == index))
            {
                SetQueueCoalescing(index, coalescing);
            }
        }
    }

    // A direction-wide set replaced every per-queue setting of that direction (transmit queues have odd indexes).
    private void ForgetQueueCoalescing(bool transmit)
    {
        for (int index = transmit ? 1 : 0; index < _queueCoalescing.Length; index += 2)
        {
            _queueCoalescing[index] = null;
        }
    }

    /// <summary>
    /// The transmit pair for a flow with hash <paramref name="flowHash"/>: the RSS indirection table's choice when RSS is
    /// on (so a flow's transmit and receive share a pair), otherwise the hash modulo the active pairs.
    /// </summary>
    public int TransmitPairFor(uint flowHash)
    {
        if (Rss is { } rss)
        {
            int queue = rss.QueueFor(flowHash);
            if (queue < ActiveQueuePairs)
            {
                return queue;
            }
        }

        return (int)(flowHash % (uint)ActiveQueuePairs);
    }

    // Bring-up, after DRIVER_OK: §5.1.6.5.5 the device starts with one pair; tell it about the others. With MQ this is
    // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET; with RSS alone, an RSS configuration spreading over the pairs does the same.
    private void StartQueuePairs()
    {
        if (QueuePairs <= 1)
        {
            return;
        }

        if ((NegotiatedFeatures & VirtioNetFeatures.Mq) != 0)
        {
            SetActiveQueuePairs(QueuePairs);
        }
        else
        {
            // QEMU's table holds 128 entries (VIRTIO_NET_RSS_MAX_TABLE_LEN), the spec's minimum for a device's maximum.
            int length = Math.Min(Config.RssMaxIndirectionTableLength, 128);
            var types = (RssHashTypes)Config.SupportedHashTypes & new RssConfiguration().HashTypes;
            byte[] key = ToeplitzHash.DefaultKey[..Math.Min(Config.RssMaxKeySize, ToeplitzHash.MaxKeyLength)].ToArray();
            ConfigureRss(RssConfiguration.Spread(QueuePairs, length, types, key));
        }
    }

    private void ValidateActivePairs(int pairs)
    {
        ObjectDisposedException.ThrowIf(_device.IsDisposed, _device);
        if (pairs < 1 || pairs > QueuePairs)
        {
            throw new ArgumentOutOfRangeException(nameof(pairs), pairs, $"The active queue pairs must be 1 to {QueuePairs} (the pairs set up; the device offers {Config.MaxVirtqueuePairs}).");
        }
    }

    private void SendCoalescing(byte command, NotificationCoalescing coalescing)
    {
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.NotfCoal, "VIRTIO_NET_F_NOTF_COAL", "notification coalescing");
            Span<byte> payload = stackalloc byte[NotificationCoalescing.Length];
            MultiQueuePayloads.WriteCoalescing(payload, coalescing);
            control.Execute(VirtioNetControlClass.NotfCoal, command, payload);
        }
    }
}
