using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading.Channels;
using VirtioNet.Core;
using VirtioNet.Net.Control;
using VirtioNet.Platform;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// The virtio-net device driver: one receive queue and one transmit queue (receiveq1 = 0, transmitq1 = 1, §5.1.2),
/// feature negotiation, MAC and link state, the three receive modes, transmit with completion reclaim, statistics,
/// and interrupt-driven or busy-poll operation. Ref: virtio v1.2 §5.1.
/// </summary>
/// <remarks>
/// Threading: each queue pair belongs to one worker at a time (the packet path takes no lock); a second thread calling
/// into a queue while its worker is inside gets an <see cref="InvalidOperationException"/> instead of a torn ring.
/// Workers of different pairs may run and wait at once, also in interrupt mode on a shared line
/// (VirtioNetDevice.Interrupts.cs explains how and what is safe from which thread). The control methods
/// (Set/Add/Remove/Configure), <see cref="Recover"/>, <see cref="CheckHealth"/>, statistics and <see cref="IsLinkUp"/>
/// may be used from any thread; recovery never lets a worker see a queue half built (VirtioNetDevice.Recovery.cs).
/// </remarks>
public sealed partial class VirtioNetDevice : IDisposable
{
    // receiveq1's index. Queue numbering: 0:rx0 1:tx0 2:rx1 3:tx1 ... 2N:controlq (§5.1.2).
    private const int ReceiveQueueIndex = 0;

    // transmitq1's index.
    private const int TransmitQueueIndex = 1;

    // The control queue holds one command at a time; a few entries are plenty (QEMU's is 64).
    private const int ControlQueueMaxSize = 64;

    // The transport the device sits behind; the driver never knows which kind it is.
    private readonly IVirtioTransport _transport;

    // Where rings and packet buffers come from; only used at setup and teardown.
    private readonly IDmaAllocator _dma;

    // The caller's choices, validated.
    private readonly VirtioNetOptions _options;

    // Measures the link poll interval in poll mode.
    private readonly Stopwatch _linkPollClock = Stopwatch.StartNew();

    // Last link status seen, to raise LinkStateChanged only on a change.
    private ushort _lastStatus;

    // Set once Dispose has started; every public operation checks it.
    private bool _disposed;

    // receiveq1..N; index k is queue 2k.
    private VirtioNetReceiveQueue[] _receiveQueues = [];

    // transmitq1..N; index k is queue 2k + 1.
    private VirtioNetTransmitQueue[] _transmitQueues = [];

    // The pairs the caller sees: pair k owns _receiveQueues[k] and _transmitQueues[k].
    private VirtioNetQueuePair[] _pairs = [];

    // The control queue, when VIRTIO_NET_F_CTRL_VQ was negotiated (the control plane sends through it).
    private VirtioNetControlQueue? _control;

    // The control plane.
    private VirtioNetControl? _controlPlane;

    // What Events delivers: bounded, the oldest dropped when nobody reads, so a device nobody listens to holds little.
    private readonly Channel<VirtioNetDeviceEvent> _events = Channel.CreateBounded<VirtioNetDeviceEvent>(
        new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropOldest });

    // Every queue created, by its index on the device: where NotifyWithData finds the queue a notification is about.
    private IVirtqueue?[] _queuesByIndex = [];

    // What the queues call to notify the device: the transport's Notify, or NotifyWithData with VIRTIO_F_NOTIFICATION_DATA.
    private Action<int>? _notifyQueue;

    private VirtioNetDevice(IVirtioTransport transport, IDmaAllocator dma, VirtioNetOptions options)
    {
        _transport = transport;
        _dma = dma;
        _options = options;
    }

    /// <summary>Raised on the worker's thread when the link status changes (configuration change interrupt, or the link poll).</summary>
    public event EventHandler<LinkStateChangedEventArgs>? LinkStateChanged;

    /// <summary>
    /// The device's events as messages (link up and down, announce requested, configuration changed, queue broken,
    /// recovered), in the order they happened; completed when the device is disposed. It holds the last 256 when nobody
    /// reads. They are seen where the .NET events are raised: in the waits, <see cref="ProcessEvents"/>,
    /// <see cref="CheckLink"/>, <see cref="CheckHealth"/> and recovery.
    /// </summary>
    public ChannelReader<VirtioNetDeviceEvent> Events => _events.Reader;

    // Posts an event for Events; never blocks (the oldest is dropped when the channel is full).
    internal void Post(VirtioNetDeviceEventKind kind, string? detail = null)
    {
        _events.Writer.TryWrite(new VirtioNetDeviceEvent(kind, detail));
        VirtioNetTelemetry.Report(_transport.Description, kind, detail);
    }

    /// <summary>The transport's description, e.g. "virtio-mmio v1 @ 0x10008000".</summary>
    public string TransportDescription => _transport.Description;

    /// <summary>All 128 feature bits the device offered.</summary>
    public VirtioFeatureSet OfferedFeatures { get; private set; }

    /// <summary>All 128 feature bits both sides agreed on.</summary>
    public VirtioFeatureSet NegotiatedFeatures { get; private set; }

    /// <summary>
    /// The MAC address in use: the device's (VIRTIO_NET_F_MAC), a random locally administered one, or the one set
    /// with <see cref="VirtioNetControl.SetMacAddress"/>.
    /// </summary>
    public ReadOnlyMemory<byte> MacAddress { get; internal set; }

    /// <summary>True when the MAC came from the device's configuration space.</summary>
    public bool MacFromDevice { get; internal set; }

    /// <summary>The queue pairs set up (receiveq1/transmitq1 ... receiveqN/transmitqN): the data path, pair by pair.</summary>
    public IReadOnlyList<VirtioNetQueuePair> Pairs => _pairs;

    /// <summary>The control plane: receive modes, filters, MAC address, offloads, RSS, coalescing, device statistics.</summary>
    public VirtioNetControl Control => _controlPlane!;

    /// <summary>The configuration read at start-up (MTU, speed, duplex, queue pairs).</summary>
    public VirtioNetConfig Config { get; private set; } = new();

    /// <summary>
    /// The largest MTU the buffers were sized for: the device's (VIRTIO_NET_F_MTU), or <see cref="VirtioNetOptions.MaxMtu"/>
    /// when the device reports none.
    /// </summary>
    public int Mtu { get; private set; } = EthernetFrame.DefaultMtu;

    /// <summary>The receive mode chosen from the negotiated features.</summary>
    public ReceiveMode ReceiveMode { get; private set; }

    /// <summary>The virtio_net_hdr length in use (10, 12 or 20 bytes).</summary>
    public int HeaderLength { get; private set; }

    /// <summary>Interrupt or poll.</summary>
    public OperationMode OperationMode => _options.OperationMode;

    /// <summary>The ring layout negotiation chose (VIRTIO_F_RING_PACKED).</summary>
    public RingLayout RingLayout => NegotiatedFeatures.ContainsAny(VirtioFeatures.RingPacked) ? RingLayout.Packed : RingLayout.Split;

    /// <summary>What the driver waits on, as the platform names it ("none" in poll mode).</summary>
    public string InterruptDescription => OperationMode == OperationMode.Poll ? "none" : _transport.Interrupt?.ToString() ?? "none";

    /// <summary>True while the link is up (always, without VIRTIO_NET_F_STATUS).</summary>
    public bool IsLinkUp => (Volatile.Read(ref _lastStatus) & VirtioNetConfig.StatusLinkUp) != 0;

    // What the device's facets reach through.
    internal IVirtioTransport Transport => _transport;

    internal VirtioNetOptions Options => _options;

    internal bool IsDisposed => _disposed;

    /// <summary>Configuration change interrupts taken.</summary>
    public long ConfigurationInterrupts { get; private set; }

    // The largest frame a receive queue delivers, and a transmit queue takes (the MTU, the Ethernet header, one tag).
    private int _maxReceiveFrameLength;

    private int _maxTransmitFrameLength;

    /// <summary>
    /// Brings the device up: §3.1.1 initialization, configuration read, queues set up, receive buffers posted, DRIVER_OK.
    /// On failure the device is marked FAILED, reset, and everything allocated is released before the exception leaves.
    /// </summary>
    public static VirtioNetDevice Open(IVirtioTransport transport, IDmaAllocator dma, VirtioNetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(dma);
        options ??= new VirtioNetOptions();
        options.Validate();
        if (options.OperationMode != OperationMode.Poll && transport.Interrupt is null)
        {
            throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"{transport.Description}: {options.OperationMode.ToString().ToLowerInvariant()} mode was asked for, but the platform gives this device no interrupt line.");
        }

        var device = new VirtioNetDevice(transport, dma, options);
        try
        {
            device.Initialize();
            VirtioNetTelemetry.Register(device);
            return device;
        }
        catch
        {
            VirtioDeviceInitializer.Fail(transport);
            device.Dispose();
            throw;
        }
    }

    private void Initialize()
    {
        // §6.1: ORDER_PLATFORM promises barriers suitable for hardware devices, which only the platform can vouch for.
        VirtioFeatureSet wanted = _options.SupportedFeatureSet;
        if (!_dma.OrdersAccessesForHardwareDevices)
        {
            wanted = wanted.Without(VirtioFeatures.OrderPlatform);
        }

        NegotiatedFeatures = VirtioDeviceInitializer.Negotiate(
            _transport, VirtioDeviceTypes.Network, wanted, VirtioFeatureSet.None, VirtioNetOptions.WithoutUnmetDependencies);
        OfferedFeatures = new VirtioFeatureSet(_transport.ReadDeviceFeatures(), _transport.IsLegacy ? 0 : _transport.ReadDeviceFeaturesHigh());
        CheckAccessPlatform();
        HeaderLength = VirtioNetHeader.LengthFor(NegotiatedFeatures);
        ulong negotiated = NegotiatedFeatures.Low;

        Config = VirtioNetConfig.Read(_transport, negotiated);
        _lastStatus = Config.Status;
        Mtu = Config.Mtu ?? _options.MaxMtu;
        if (Config.Mac is { } mac)
        {
            MacAddress = mac;
            MacFromDevice = true;
        }
        else
        {
            MacAddress = _options.FallbackMac ?? RandomLocalMac();
        }

        ReceiveMode = ReceiveModeSelector.Choose(negotiated, Mtu);
        _maxReceiveFrameLength = ReceiveModeSelector.MaxReceiveFrameLength(negotiated, Mtu);
        _maxTransmitFrameLength = Mtu + EthernetFrame.HeaderLength + EthernetFrame.VlanTagLength;

        // §5.1.6.2 and §5.1.6.3.2 (legacy): without ANY_LAYOUT a legacy device expects the header in a descriptor of its own.
        bool headerInOwnDescriptor = _transport.IsLegacy && (negotiated & VirtioFeatures.AnyLayout) == 0;
        bool indirect = (negotiated & VirtioFeatures.IndirectDesc) != 0;

        // Chosen once: without NOTIFICATION_DATA the queues call the transport directly, exactly as before the feature existed.
        _notifyQueue = (negotiated & VirtioFeatures.NotificationData) != 0 ? NotifyWithData : _transport.Notify;

        // §5.1.5: with MQ or RSS the device has max_virtqueue_pairs pairs; the driver sets up as many as it will use
        // (each exactly like the first, 0:rx0 1:tx0 2:rx1 3:tx1 ...) and tells the device after DRIVER_OK.
        int pairs = (negotiated & (VirtioNetFeatures.Mq | VirtioNetFeatures.Rss)) == 0 ? 1 : Math.Min(Config.MaxVirtqueuePairs, _options.QueuePairs);
        _receiveQueues = new VirtioNetReceiveQueue[pairs];
        _transmitQueues = new VirtioNetTransmitQueue[pairs];
        _pairs = new VirtioNetQueuePair[pairs];
        for (int pair = 0; pair < pairs; pair++)
        {
            int rxIndex = ReceiveQueueIndex + (2 * pair);
            int txIndex = TransmitQueueIndex + (2 * pair);
            _receiveQueues[pair] = new VirtioNetReceiveQueue(
                rxIndex, QueueSizeFor(rxIndex, $"receiveq{pair + 1}"), ReceiveMode, HeaderLength, _maxReceiveFrameLength,
                headerInOwnDescriptor, indirect, _dma, CreateQueue, _notifyQueue);
            _transmitQueues[pair] = new VirtioNetTransmitQueue(
                txIndex, QueueSizeFor(txIndex, $"transmitq{pair + 1}"), HeaderLength, _maxTransmitFrameLength,
                headerInOwnDescriptor, indirect, _dma, CreateQueue, _notifyQueue);
            _receiveQueues[pair].ConfigureOffloads(NegotiatedFeatures, _options.VerifyReceivedChecksums);
            _transmitQueues[pair].ConfigureOffloads(NegotiatedFeatures);
            _pairs[pair] = new VirtioNetQueuePair(this, pair, _receiveQueues[pair], _transmitQueues[pair]);
        }

        CreateControlQueue();
        _controlPlane = new VirtioNetControl(this, _control);
        CreateReceiveWaiters();
        CreateAdaptivePolling();
        CreateAsyncWaiters();

        PostReceiveBuffersAndSetDriverOk();
        _controlPlane.Start();
        StartWatchdog();
    }

    // Bring-up, before DRIVER_OK: the control queue follows the data queues (index 2N, §5.1.2).
    private void CreateControlQueue()
    {
        if (!NegotiatedFeatures.ContainsAny(VirtioNetFeatures.CtrlVq))
        {
            return;
        }

        // §5.1.2: controlq is 2N with N = max_virtqueue_pairs under MQ or RSS (1 otherwise), however many pairs are used.
        int index = 2 * Config.MaxVirtqueuePairs;
        int size = Math.Min(QueueSizeFor(index, "controlq"), ControlQueueMaxSize);

        // Room for both MAC tables at the configured capacity (8 bytes of counts, 6 per address), and at least 2 KiB
        // so an RSS configuration with a 128-entry indirection table (QEMU's maximum) fits too.
        int payload = Math.Max(2048, 8 + (EthernetFrame.AddressLength * _options.MacFilterCapacity));
        _control = new VirtioNetControlQueue(index, size, _options.ControlCommandTimeout, payload, _transport.Description, _dma, CreateQueue, _notifyQueue ?? _transport.Notify);
    }

    // Bring-up and recovery, once the queues are set up: §5.1.5, fill the receive queues before DRIVER_OK so the device
    // never sees them empty, and notify after; interrupts on receive only, and only in interrupt mode.
    private void PostReceiveBuffersAndSetDriverOk()
    {
        foreach (VirtioNetReceiveQueue rx in _receiveQueues)
        {
            rx.Refill();
        }

        VirtioDeviceInitializer.SetDriverOk(_transport);
        foreach (VirtioNetReceiveQueue rx in _receiveQueues)
        {
            rx.RefillAndKick();
            if (OperationMode == OperationMode.Poll)
            {
                rx.Queue.DisableInterrupts();
            }
        }

        // Transmit completions are reclaimed when sending; their interrupts would only wake the worker for nothing.
        foreach (VirtioNetTransmitQueue tx in _transmitQueues)
        {
            tx.Queue.DisableInterrupts();
        }
    }

    private int QueueSizeFor(int queueIndex, string name)
    {
        if (_transport.IsQueueActive(queueIndex))
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{_transport.Description}: {name} (queue {queueIndex}) is already live after a reset.");
        }

        int max = _transport.GetQueueSizeMax(queueIndex);
        if (max == 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{_transport.Description}: {name} (queue {queueIndex}) does not exist (QueueNumMax is 0).");
        }

        // The split ring's size must be a power of two (§2.7); take the largest one the device and the options allow.
        int size = Math.Min(max, _options.MaxQueueSize);
        return 1 << (31 - int.LeadingZeroCount(size));
    }

    private IVirtqueue CreateQueue(int index, int size, int maxChain)
    {
        // The device chose the size: a queue smaller than the longest chain it must carry (receive pages, header and
        // frame, a control command) could never take one, indirect or not (Ref: virtio v1.2 §2.7.5.3.1, §2.8.7.1: no chain
        // longer than the queue size).
        if (size < maxChain)
        {
            throw new VirtioException(
                VirtioErrorReason.QueueUnavailable,
                $"{_transport.Description}: queue {index} holds {size} descriptors, fewer than the {maxChain} one of its chains may need.");
        }

        var options = new VirtqueueOptions
        {
            EventIdx = (NegotiatedFeatures & VirtioFeatures.EventIdx) != 0,
            IndirectDesc = (NegotiatedFeatures & VirtioFeatures.IndirectDesc) != 0,
            InOrder = (NegotiatedFeatures & VirtioFeatures.InOrder) != 0,
            LegacyQueueAlign = _transport.LegacyQueueAlign,
            MaxIndirectChain = Math.Max(maxChain, 2),
        };

        // The ring layout is chosen once by negotiation (§2.8: RING_PACKED needs VERSION_1, so never on a legacy transport).
        IVirtqueue queue = (NegotiatedFeatures & VirtioFeatures.RingPacked) != 0
            ? new PackedVirtqueue(index, size, _dma, options)
            : new SplitVirtqueue(index, size, _dma, options);
        try
        {
            _transport.ActivateQueue(index, size, queue.DescriptorArea, queue.DriverArea, queue.DeviceArea);
        }
        catch
        {
            queue.Dispose();
            throw;
        }

        if (index >= _queuesByIndex.Length)
        {
            // Setup time only.
            Array.Resize(ref _queuesByIndex, index + 1);
        }

        _queuesByIndex[index] = queue;
        return queue;
    }

    // §2.9: with VIRTIO_F_NOTIFICATION_DATA every notification says where the queue's available ring ends.
    /// <summary>
    /// VIRTIO_F_ACCESS_PLATFORM (virtio v1.2 §6.1). Every address the driver gives the device comes from the platform's
    /// DMA allocator, so accepting the feature when offered is always right (QEMU's <c>iommu_platform=on</c> refuses
    /// FEATURES_OK without it). Without it the device uses CPU physical addresses untranslated, which a platform whose
    /// allocator hands out translated (IOMMU) addresses cannot give: that combination is refused here.
    /// </summary>
    private void CheckAccessPlatform()
    {
        if (_dma.TranslatesDeviceAddresses && (NegotiatedFeatures & VirtioFeatures.AccessPlatform) == 0)
        {
            throw new VirtioException(
                VirtioErrorReason.RequiredFeatureMissing,
                $"{_transport.Description}: the platform's DMA addresses are translated (IOMMU) but the device did not negotiate VIRTIO_F_ACCESS_PLATFORM, so it would use them as physical addresses (virtio v1.2 §6.1).");
        }
    }

    private void NotifyWithData(int queueIndex) => _transport.Notify(queueIndex, _queuesByIndex[queueIndex]!.GetNotificationData());

    /// <summary>
    /// Resets one receive or transmit queue alone (VIRTIO_F_RING_RESET) while the others keep running: the device stops
    /// using it and forgets its indexes; the driver takes back every buffer it held (receive buffers are posted again;
    /// transmit slots are freed, and the frames in them may or may not have left), sets the queue up again at the same
    /// addresses, refills it and notifies the device. Not thread-safe: call it from the worker that owns the queues.
    /// A queue the device broke stays broken. The queue's own notification coalescing, when the caller set it with
    /// <see cref="VirtioNetControl.SetQueueCoalescing"/>, is sent again afterwards (the device went back to the direction's, §5.1.6.5.9).
    /// Ref: virtio v1.2 §2.6.1.
    /// </summary>
    /// <param name="queueIndex">receiveqN (2N - 2) or transmitqN (2N - 1); the control queue cannot be reset this way.</param>
    /// <returns>The chains the queue held that were taken back without the device returning them.</returns>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.RequiredFeatureMissing"/> when VIRTIO_F_RING_RESET was not negotiated; with
    /// <see cref="VirtioErrorReason.Timeout"/> or <see cref="VirtioErrorReason.DeviceMisbehaved"/> when the device does
    /// not finish the reset (the queue is then left reset and unusable until the device is reset).
    /// </exception>
    public int ResetQueue(int queueIndex)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((NegotiatedFeatures & VirtioFeatures.RingReset) == 0)
        {
            throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, $"{_transport.Description}: queue {queueIndex} cannot be reset alone: VIRTIO_F_RING_RESET was not negotiated.");
        }

        int pair = queueIndex / 2;
        if (queueIndex < 0 || pair >= _receiveQueues.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(queueIndex), queueIndex, $"Only receive and transmit queues (0 to {(2 * _receiveQueues.Length) - 1}) can be reset alone.");
        }

        bool receive = queueIndex % 2 == 0;
        IVirtqueue queue = receive ? _receiveQueues[pair].Queue : _transmitQueues[pair].Queue;
        QueueGate gate = receive ? _receiveQueues[pair].Gate : _transmitQueues[pair].Gate;
        int detached;
        bool entered = gate.Enter();
        try
        {
            detached = ResetQueueEntered(queueIndex, pair, receive, queue);
        }
        finally
        {
            gate.Exit(entered);
        }

        // §5.1.6.5.9: a re-enabled queue has its direction's coalescing again; the caller's own for it is sent again.
        // Outside the gate: recovery takes the control lock before the gates.
        lock (Control.StateLock)
        {
            Control.RestoreQueueCoalescing(queueIndex);
        }

        return detached;
    }

    private int ResetQueueEntered(int queueIndex, int pair, bool receive, IVirtqueue queue)
    {

        // §2.6.1.1: the device is done with the queue's memory once the reset completes, so the buffers can be taken back.
        _transport.ResetQueue(queueIndex);
        int detached = receive ? _receiveQueues[pair].ReclaimAfterQueueReset() : _transmitQueues[pair].ReclaimAfterQueueReset();

        // §2.6.1.2: re-enabled like a new queue; the rings are as new (indexes 0, memory zeroed) after DetachAll.
        _transport.ActivateQueue(queueIndex, queue.Size, queue.DescriptorArea, queue.DriverArea, queue.DeviceArea);
        if (receive)
        {
            if (OperationMode == OperationMode.Poll)
            {
                queue.DisableInterrupts();
            }

            _receiveQueues[pair].RefillAndKick();
        }
        else
        {
            queue.DisableInterrupts();
        }

        return detached;
    }

    // WaitForReceive for any receive queue (receiveq1 or a given pair's). Interrupt mode lets one worker per pair wait at
    // once (VirtioNetDevice.Interrupts.cs); poll mode spins on the used ring. With automatic recovery, a device found
    // needing a reset (configuration interrupt, poll-mode check) or a ring found broken is recovered, and the wait goes
    // on for the time left.
    internal bool WaitForReceiveOn(VirtioNetReceiveQueue rx, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            try
            {
                TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(start);
                return OperationMode switch
                {
                    OperationMode.Interrupt => WaitForReceiveOnInterrupt(rx.QueueIndex / 2, remaining, cancellationToken),
                    OperationMode.Adaptive => WaitForReceiveAdaptive(rx, remaining, cancellationToken),
                    _ => WaitForReceivePolling(rx, start, timeout, cancellationToken),
                };
            }
            catch (VirtioException e) when (TryRecoverFrom(e))
            {
                // Recovered (or recovered by another thread meanwhile): buffers are posted again; wait on for the time left.
                if (Stopwatch.GetElapsedTime(start) >= timeout)
                {
                    return false;
                }
            }
        }
    }

    // The poll-mode wait. The ring is touched only inside the queue's gate.
    private bool WaitForReceivePolling(VirtioNetReceiveQueue rx, long start, TimeSpan timeout, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (HasUsedGated(rx))
            {
                return true;
            }

            PollLink();
            if (Stopwatch.GetElapsedTime(start) >= timeout)
            {
                return false;
            }

            Thread.SpinWait(64);
        }
    }

    /// <summary>
    /// Handles what the device signalled without waiting: a pending interrupt in interrupt mode (unless a worker waiting
    /// in <see cref="VirtioNetQueuePair.WaitForReceive"/> holds the line and handles it), a due link and
    /// health check in poll mode. With <see cref="VirtioNetOptions.AutoRecover"/>, a device found needing a reset is
    /// recovered. May be called from any thread.
    /// </summary>
    public void ProcessEvents()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            if (OperationMode == OperationMode.Poll)
            {
                PollLink();
            }
            else
            {
                ProcessPendingInterrupt();
            }
        }
        catch (VirtioException e) when (TryRecoverFrom(e))
        {
            // Recovered.
        }
    }

    // Reads and acknowledges the device's interrupt causes; on a configuration change checks the device's health and the
    // link. Only the worker holding the line calls it (VirtioNetDevice.Interrupts.cs), so one thread at a time reads the
    // ISR or InterruptStatus. A shared line cannot say which queue a used-buffer interrupt was for: the holder looks.
    private InterruptCause HandleInterrupt()
    {
        InterruptCause cause = _transport.ReadAndAcknowledgeInterrupt();
        if ((cause & InterruptCause.UsedBuffer) != 0)
        {
            Interlocked.Increment(ref _usedBufferInterrupts);
        }

        if ((cause & InterruptCause.ConfigurationChange) != 0)
        {
            ConfigurationInterrupts++;
            Post(VirtioNetDeviceEventKind.ConfigurationChanged);
            VirtioDeviceInitializer.CheckHealthy(_transport);
            RereadSpeedDuplex();
            CheckLink();
        }

        return cause;
    }

    // Poll mode: no configuration interrupt arrives, so link, speed and duplex, and DEVICE_NEEDS_RESET are read every
    // LinkPollInterval.
    private void PollLink()
    {
        if (_linkPollClock.Elapsed >= _options.LinkPollInterval)
        {
            _linkPollClock.Restart();
            CheckNeedsResetPolled();
            RereadSpeedDuplex();
            CheckLink();
        }
    }

    /// <summary>Re-reads the link status now and raises <see cref="LinkStateChanged"/> if it changed. Returns whether the link is up.</summary>
    public bool CheckLink()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ushort status = VirtioNetConfig.ReadStatus(_transport, NegotiatedFeatures.Low);
        ushort previous = _lastStatus;
        Volatile.Write(ref _lastStatus, status);
        if (((status ^ previous) & VirtioNetConfig.StatusLinkUp) != 0)
        {
            Post((status & VirtioNetConfig.StatusLinkUp) != 0 ? VirtioNetDeviceEventKind.LinkUp : VirtioNetDeviceEventKind.LinkDown);
        }

        if ((status & VirtioNetConfig.StatusAnnounce) != 0 && (previous & VirtioNetConfig.StatusAnnounce) == 0)
        {
            Post(VirtioNetDeviceEventKind.AnnounceRequested);
        }

        if (((status ^ previous) & VirtioNetConfig.StatusLinkUp) != 0 || (status & VirtioNetConfig.StatusAnnounce) != 0)
        {
            LinkStateChanged?.Invoke(this, new LinkStateChangedEventArgs(
                (status & VirtioNetConfig.StatusLinkUp) != 0,
                (status & VirtioNetConfig.StatusAnnounce) != 0));
        }

        HandleAnnounce(status, previous);
        return (status & VirtioNetConfig.StatusLinkUp) != 0;
    }

    /// <summary>Snapshots of the queues, for dumps.</summary>
    public IReadOnlyList<VirtqueueState> GetQueueStates()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var states = new List<VirtqueueState>();
        for (int i = 0; i < _receiveQueues.Length; i++)
        {
            states.Add(_receiveQueues[i].Queue.GetState());
            states.Add(_transmitQueues[i].Queue.GetState());
        }

        return states;
    }

    /// <summary>receiveq1, for tests that play the device side of the ring.</summary>
    internal IVirtqueue ReceiveQueue => _receiveQueues[0].Queue;

    /// <summary>transmitq1, for tests that play the device side of the ring.</summary>
    internal IVirtqueue TransmitQueue => _transmitQueues[0].Queue;

    /// <summary>The transport's registers, when it can list them (for dumps); empty otherwise.</summary>
    public IReadOnlyList<RegisterValue> ReadRegisters() =>
        _transport is IRegisterDump dump ? dump.ReadRegisters(2) : [];

    /// <summary>Resets the device (so it stops touching driver memory), then releases the queues and buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        VirtioNetTelemetry.Unregister(this);

        // Before the queues go: the watchdog's timer reads their rings.
        StopWatchdog();
        try
        {
            // §3.3.1: reset first, so the device no longer reads or writes memory that is about to be freed.
            VirtioDeviceInitializer.Reset(_transport);
        }
        catch (VirtioException)
        {
            // The platform is gone (QEMU exited): nothing can use the memory any more.
        }

        // Entries stay null past a queue whose creation failed during bring-up.
        foreach (VirtioNetReceiveQueue? rx in _receiveQueues)
        {
            rx?.Dispose();
        }

        foreach (VirtioNetTransmitQueue? tx in _transmitQueues)
        {
            tx?.Dispose();
        }

        _control?.Dispose();
        DisposeReceiveWaiters();
        _dispatch?.Dispose();
        CompleteAllAsyncWaiters(new ObjectDisposedException(nameof(VirtioNetDevice), "The device was disposed while a wait was pending."));
        _events.Writer.TryComplete();
    }

    // Called by CheckLink with the status read and the one before: on a new VIRTIO_NET_S_ANNOUNCE the control plane
    // announces the addresses on transmitq1 and acknowledges (§5.1.6.5.4). Acting on the rising edge only keeps a refused
    // ack from repeating forever. The frames go out on transmitq1, which belongs to pair 0's worker: the announcement is
    // made here only on that worker's own thread (or before any worker has used the queue), never from the asynchronous
    // dispatch; otherwise it is left to the worker, whose next transmit call makes it (VirtioNetQueuePair).
    private void HandleAnnounce(ushort status, ushort previous)
    {
        if ((status & VirtioNetConfig.StatusAnnounce) == 0 || (previous & VirtioNetConfig.StatusAnnounce) != 0 || _pairs.Length == 0)
        {
            return;
        }

        VirtioNetQueuePair pair = _pairs[0];
        if (t_inAsyncDispatch || !pair.TransmitQueue.Gate.IsOwnerOrUnowned)
        {
            pair.RequestAnnounce();
            return;
        }

        Announce();
    }

    // On transmitq1's worker: the gratuitous ARPs and neighbour advertisements, and the ack.
    internal void Announce()
    {
        if (!Control.Announce())
        {
            return;
        }

        // The ack clears the bit at the device (QEMU does so before completing the command). Take the bit as it is now,
        // so the device's next request is a new edge, while a device that keeps it set is not answered again and again.
        ushort now = VirtioNetConfig.ReadStatus(_transport, NegotiatedFeatures.Low);
        ushort last = Volatile.Read(ref _lastStatus);
        Volatile.Write(ref _lastStatus, (ushort)((last & ~VirtioNetConfig.StatusAnnounce) | (now & VirtioNetConfig.StatusAnnounce)));
    }

    private static byte[] RandomLocalMac()
    {
        byte[] mac = new byte[EthernetFrame.AddressLength];
        RandomNumberGenerator.Fill(mac);

        // Locally administered (bit 1 set), unicast (bit 0 clear): IEEE 802 §8.2.
        mac[0] = (byte)((mac[0] | 0x02) & ~0x01);
        return mac;
    }
}
