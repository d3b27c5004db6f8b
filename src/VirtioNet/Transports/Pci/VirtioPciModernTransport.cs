using VirtioNet.Core;
using VirtioNet.Platform;
using Cfg = VirtioNet.Transports.Pci.VirtioPciCommonCfg;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// The modern virtio-pci transport (virtio 1.x): the common, notify, ISR and device structures found through the
/// vendor capabilities, each mapped from its BAR and checked to lie inside it; per-queue notify addresses; INTx with
/// the ISR read, or MSI-X with a configuration vector and one vector per queue. Ref: virtio v1.2 §4.1.
/// </summary>
public sealed class VirtioPciModernTransport : IVirtioTransport, IRegisterDump, IQueueInterrupts
{
    private readonly PciFunctionAccess _function;
    private readonly IRegisterWindow _common;
    private readonly IRegisterWindow _notify;
    private readonly IRegisterWindow _isr;
    private readonly IRegisterWindow? _device;
    private readonly VirtioPciInterrupts _interrupts;

    // Byte offset in the notify structure of each activated queue (§4.1.4.4), or -1; computed once at activation.
    private long[] _notifyOffsets;

    // With VIRTIO_F_NOTIF_CONFIG_DATA: each activated queue's queue_notif_config_data, the value its notifications carry
    // (§4.1.5.2); null while the feature is not accepted. Read once at activation, like the notify address.
    private ushort[]? _notifConfigData;

    /// <summary>
    /// Opens the modern interface of <paramref name="function"/>.
    /// </summary>
    /// <param name="function">The function's configuration space and assigned BARs.</param>
    /// <param name="mode">How the device interrupts.</param>
    /// <param name="intx">The platform's INTx line (for <see cref="VirtioPciInterruptMode.Intx"/>).</param>
    /// <param name="openVector">Opens MSI-X vector n (for the MSI-X modes); the transport owns and disposes what it returns.</param>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.NotVirtio"/> for a non-virtio function; <see cref="VirtioErrorReason.UnsupportedVersion"/>
    /// when the modern capabilities are missing; <see cref="VirtioErrorReason.InvalidConfiguration"/> for a malformed
    /// capability list or a structure outside its BAR. The device is left as it was (in reset, after power-on).
    /// </exception>
    public VirtioPciModernTransport(
        PciFunctionAccess function,
        VirtioPciInterruptMode mode,
        IInterruptLine? intx = null,
        Func<int, IMessageInterruptLine>? openVector = null)
    {
        _function = function;
        DeviceId = VirtioPciIdentity.Check(function, out ushort pciDeviceId);
        PciDeviceId = pciDeviceId;
        Capabilities = VirtioPciCapabilityParser.Parse(function.ConfigSpace, function.Name);
        if (!Capabilities.HasModernInterface)
        {
            throw new VirtioException(
                VirtioErrorReason.UnsupportedVersion,
                $"PCI function {function.Name} ({VendorId:x4}:{pciDeviceId:x4}) has no modern interface (common, notify and ISR capabilities); drive it with the legacy transport.");
        }

        VirtioPciCapability common = Capabilities.Find(VirtioPciCapabilityType.CommonCfg)!;
        VirtioPciCapability notify = Capabilities.Find(VirtioPciCapabilityType.NotifyCfg)!;
        VirtioPciCapability isr = Capabilities.Find(VirtioPciCapabilityType.IsrCfg)!;
        VirtioPciCapability? device = Capabilities.Find(VirtioPciCapabilityType.DeviceCfg);
        if (common.Length < Cfg.MinimumLength)
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"PCI function {function.Name}: the common configuration structure is 0x{common.Length:x} bytes, shorter than the 0x{Cfg.MinimumLength:x} of virtio 1.0.");
        }

        _common = Map(common, "common configuration");
        _notify = Map(notify, "notify structure");
        _isr = Map(isr, "ISR status");
        _device = device is { Length: > 0 } ? Map(device, "device configuration") : null;
        NotifyOffMultiplier = notify.NotifyOffMultiplier;
        _notifyOffsets = new long[NumQueues];
        Array.Fill(_notifyOffsets, -1);
        _interrupts = new VirtioPciInterrupts(function, Capabilities, mode, intx, openVector);
    }

    /// <summary>The capabilities found in configuration space.</summary>
    public PciCapabilityList Capabilities { get; }

    /// <summary>The PCI device id (0x1041 for a modern network device, 0x1000 for a transitional one).</summary>
    public ushort PciDeviceId { get; }

    /// <summary>
    /// num_queues: how many queues the device has, read from the device each time. It can grow after negotiation:
    /// QEMU reports one pair plus the control queue until VIRTIO_NET_F_MQ is accepted, then all the pairs.
    /// </summary>
    public int NumQueues => _common.Read16(Cfg.NumQueues);

    /// <summary>notify_off_multiplier of the notify structure.</summary>
    public uint NotifyOffMultiplier { get; }

    /// <summary>The interrupt kind in use.</summary>
    public VirtioPciInterruptMode InterruptMode => _interrupts.Mode;

    /// <inheritdoc />
    public string Description => $"virtio-pci modern @ {_function.Name} ({_interrupts.ModeName})";

    /// <inheritdoc />
    public bool IsLegacy => false;

    /// <inheritdoc />
    public uint DeviceId { get; }

    /// <inheritdoc />
    public uint VendorId => VirtioPciIdentity.VendorId;

    /// <inheritdoc />
    public int LegacyQueueAlign => 0;

    /// <inheritdoc />
    public IInterruptLine? Interrupt => _interrupts.Line;

    /// <inheritdoc />
    public IInterruptLine? ConfigurationInterrupt => _interrupts.ConfigurationLine;

    /// <inheritdoc />
    public IInterruptLine? GetQueueInterrupt(int queueIndex) => _interrupts.QueueLine(queueIndex);

    /// <inheritdoc />
    public VirtioDeviceStatus ReadStatus() => (VirtioDeviceStatus)_common.Read8(Cfg.DeviceStatus);

    /// <inheritdoc />
    public void WriteStatus(VirtioDeviceStatus status)
    {
        _common.Write8(Cfg.DeviceStatus, (byte)status);
        if (status == VirtioDeviceStatus.Reset)
        {
            _interrupts.ForgetConfigVector();
            Array.Fill(_notifyOffsets, -1);
            _notifConfigData = null;
        }
    }

    /// <inheritdoc />
    /// <remarks>Only when the common structure is long enough to hold queue_notif_config_data (0x38, 2 bytes).</remarks>
    public bool SupportsNotifConfigData => _common.Length >= Cfg.QueueNotifConfigData + 2;

    /// <inheritdoc />
    public ulong ReadDeviceFeatures() => ReadDeviceFeatureWords(0);

    /// <inheritdoc />
    /// <remarks>device_feature_select 2 and 3; a device defining nothing above 63 presents 0 there (§4.1.4.3.1).</remarks>
    public ulong ReadDeviceFeaturesHigh() => ReadDeviceFeatureWords(2);

    /// <inheritdoc />
    /// <remarks>driver_feature_select 2 and 3 (§4.1.4.3).</remarks>
    public void WriteDriverFeaturesHigh(ulong features) => WriteDriverFeatureWords(2, features);

    /// <inheritdoc />
    public void WriteDriverFeatures(ulong features)
    {
        WriteDriverFeatureWords(0, features);

        // §4.1.5.2: with VIRTIO_F_NOTIF_CONFIG_DATA, notifications carry the device's per-queue value, not the index.
        _notifConfigData = (features & VirtioFeatures.NotifConfigData) != 0 && SupportsNotifConfigData ? new ushort[_notifyOffsets.Length] : null;
    }

    /// <inheritdoc />
    public int GetQueueSizeMax(int queueIndex)
    {
        if (queueIndex >= NumQueues)
        {
            return 0;
        }

        SelectQueue(queueIndex);
        ushort max = _common.Read16(Cfg.QueueSize);
        return max > 32768 ? throw new VirtioException(
            VirtioErrorReason.InvalidConfiguration,
            $"{Description}: queue {queueIndex} reports queue_size {max}, above the 32768 the spec allows.") : max;
    }

    /// <inheritdoc />
    public bool IsQueueActive(int queueIndex)
    {
        if (queueIndex >= NumQueues)
        {
            return false;
        }

        SelectQueue(queueIndex);
        return _common.Read16(Cfg.QueueEnable) != 0;
    }

    /// <inheritdoc />
    public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        if (queueIndex >= NumQueues)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: queue {queueIndex} does not exist (num_queues is {NumQueues}).");
        }

        _interrupts.SetConfigVectorOnce(_common, Cfg.ConfigMsixVector);
        SelectQueue(queueIndex);
        if (_common.Read16(Cfg.QueueEnable) != 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: queue {queueIndex} is already enabled.");
        }

        // §4.1.4.4: the queue's notify address is cap.offset + queue_notify_off × notify_off_multiplier; it must lie in the
        // notify structure (which was checked to lie in its BAR). A 2-byte write is what notifying takes.
        ushort notifyOff = _common.Read16(Cfg.QueueNotifyOff);
        ulong notifyOffset = notifyOff * (ulong)NotifyOffMultiplier;
        if (notifyOffset + 2 > _notify.Length)
        {
            ResetQuietly();
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"{Description}: queue {queueIndex}'s notify offset {notifyOff} × {NotifyOffMultiplier} = 0x{notifyOffset:x} lies outside the 0x{_notify.Length:x}-byte notify structure; the device was reset.");
        }

        _common.Write16(Cfg.QueueSize, (ushort)size);
        _interrupts.SetQueueVector(_common, Cfg.QueueMsixVector, queueIndex);

        // 64-bit fields are written as two 32-bit halves, low first: §4.1.3.1 allows it and every device accepts it.
        Write64(Cfg.QueueDesc, descriptorArea);
        Write64(Cfg.QueueDriver, driverArea);
        Write64(Cfg.QueueDevice, deviceArea);
        if (queueIndex >= _notifyOffsets.Length)
        {
            // Setup time only: the array grows to the queue count the device reports now.
            long[] grown = new long[Math.Max(queueIndex + 1, NumQueues)];
            Array.Fill(grown, -1);
            _notifyOffsets.CopyTo(grown, 0);
            _notifyOffsets = grown;
        }

        if (_notifConfigData is not null)
        {
            if (queueIndex >= _notifConfigData.Length)
            {
                Array.Resize(ref _notifConfigData, _notifyOffsets.Length);
            }

            // §4.1.4.3: queue_notif_config_data exists only with the feature; any 16-bit value is the device's to choose.
            _notifConfigData[queueIndex] = _common.Read16(Cfg.QueueNotifConfigData);
        }

        _notifyOffsets[queueIndex] = (long)notifyOffset;
        _common.Write16(Cfg.QueueEnable, 1);
    }

    /// <summary>
    /// Takes a queue out of use through queue_reset (VIRTIO_F_RING_RESET, §4.1.4.3.2): the driver may never write 0 to
    /// queue_enable, so without per-queue reset only a device reset stops a queue.
    /// </summary>
    /// <exception cref="NotSupportedException">When the common structure has no queue_reset field.</exception>
    public void DeactivateQueue(int queueIndex)
    {
        if (_common.Length < Cfg.QueueReset + 2)
        {
            throw new NotSupportedException($"{Description}: a modern PCI queue cannot be disabled alone without queue_reset (VIRTIO_F_RING_RESET); reset the device instead.");
        }

        SelectQueue(queueIndex);
        _common.Write16(Cfg.QueueReset, 1);
        _notifyOffsets[queueIndex] = -1;
    }

    /// <inheritdoc />
    /// <remarks>
    /// §4.1.4.3.2: write 1 to queue_reset of the selected queue and read it back until 0; queue_enable must then read 0
    /// too. Needs the queue_reset field, which exists only in a common structure long enough to hold it.
    /// </remarks>
    public void ResetQueue(int queueIndex)
    {
        if (_common.Length < Cfg.QueueReset + 2)
        {
            throw new NotSupportedException($"{Description}: the common configuration structure (0x{_common.Length:x} bytes) has no queue_reset field.");
        }

        if (queueIndex >= NumQueues)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: queue {queueIndex} does not exist (num_queues is {NumQueues}).");
        }

        SelectQueue(queueIndex);
        _common.Write16(Cfg.QueueReset, 1);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (_common.Read16(Cfg.QueueReset) != 0)
        {
            if (clock.Elapsed > VirtioDeviceInitializer.ResetTimeout)
            {
                throw new VirtioException(VirtioErrorReason.Timeout, $"{Description}: queue {queueIndex} did not finish its reset within {VirtioDeviceInitializer.ResetTimeout.TotalSeconds} s (queue_reset still reads 1).");
            }

            Thread.Sleep(1);
        }

        // The device must present 0 in queue_enable once the reset is complete (§4.1.4.3.1).
        if (_common.Read16(Cfg.QueueEnable) != 0)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: queue {queueIndex} still reads queue_enable 1 after queue_reset; the device did not reset it.");
        }

        // Notifying a reset queue is a driver bug until ActivateQueue computes its address again.
        if ((uint)queueIndex < (uint)_notifyOffsets.Length)
        {
            _notifyOffsets[queueIndex] = -1;
        }
    }

    /// <inheritdoc />
    public void Notify(int queueIndex)
    {
        long offset = (uint)queueIndex < (uint)_notifyOffsets.Length ? _notifyOffsets[queueIndex] : -1;
        if (offset < 0)
        {
            throw new InvalidOperationException($"{Description}: queue {queueIndex} is not active; there is nothing to notify.");
        }

        // §4.1.5.2: without VIRTIO_F_NOTIFICATION_DATA the driver writes a 16-bit value: the queue index, or with
        // VIRTIO_F_NOTIF_CONFIG_DATA the queue's queue_notif_config_data.
        _notify.Write16((ulong)offset, _notifConfigData is { } values ? values[queueIndex] : (ushort)queueIndex);
    }

    /// <inheritdoc />
    /// <remarks>
    /// §4.1.5.2: with VIRTIO_F_NOTIFICATION_DATA the driver writes the 32-bit value to the queue's notify address; the
    /// caller passes the queue index in the low 16 bits, which VIRTIO_F_NOTIF_CONFIG_DATA replaces with the device's value.
    /// </remarks>
    public void Notify(int queueIndex, uint notificationData)
    {
        long offset = (uint)queueIndex < (uint)_notifyOffsets.Length ? _notifyOffsets[queueIndex] : -1;
        if (offset < 0)
        {
            throw new InvalidOperationException($"{Description}: queue {queueIndex} is not active; there is nothing to notify.");
        }

        if ((ushort)notificationData != queueIndex)
        {
            throw new ArgumentException($"Notification data 0x{notificationData:x8} is for queue {(ushort)notificationData}, not {queueIndex}.", nameof(notificationData));
        }

        // Activation checked room for 2 bytes; the 4-byte write needs two more inside the notify structure.
        if ((ulong)offset + 4 > _notify.Length)
        {
            throw new VirtioException(
                VirtioErrorReason.InvalidConfiguration,
                $"{Description}: queue {queueIndex}'s notify address 0x{offset:x} has no room for a 4-byte notification in the 0x{_notify.Length:x}-byte notify structure.");
        }

        // §4.1.5.2: with VIRTIO_F_NOTIF_CONFIG_DATA too, the low 16 bits are vq_notif_config_data instead of vq_index.
        if (_notifConfigData is { } values)
        {
            notificationData = (notificationData & 0xFFFF_0000u) | values[queueIndex];
        }

        _notify.Write32((ulong)offset, notificationData);
    }

    /// <inheritdoc />
    public InterruptCause ReadAndAcknowledgeInterrupt() => _interrupts.Acknowledge(() => _isr.Read8(0));

    /// <inheritdoc />
    public uint ReadConfigGeneration() => _common.Read8(Cfg.ConfigGeneration);

    /// <inheritdoc />
    public byte ReadConfig8(int offset) => Device(offset, 1).Read8((ulong)offset);

    /// <inheritdoc />
    public ushort ReadConfig16(int offset) => Device(offset, 2).Read16((ulong)offset);

    /// <inheritdoc />
    public uint ReadConfig32(int offset) => Device(offset, 4).Read32((ulong)offset);

    /// <inheritdoc />
    public void WriteConfig8(int offset, byte value) => Device(offset, 1).Write8((ulong)offset, value);

    /// <inheritdoc />
    public IReadOnlyList<RegisterValue> ReadRegisters(int queueCount)
    {
        var list = new List<RegisterValue>
        {
            new("device_feature", Cfg.DeviceFeature, ReadDeviceFeatures(), "device"),
            new("config_msix_vector", Cfg.ConfigMsixVector, _common.Read16(Cfg.ConfigMsixVector), "device"),
            new("num_queues", Cfg.NumQueues, _common.Read16(Cfg.NumQueues), "device"),
            new("device_status", Cfg.DeviceStatus, _common.Read8(Cfg.DeviceStatus), "device"),
            new("config_generation", Cfg.ConfigGeneration, _common.Read8(Cfg.ConfigGeneration), "device"),
        };
        for (int q = 0; q < Math.Min(queueCount, NumQueues); q++)
        {
            SelectQueue(q);
            string scope = $"queue {q}";
            list.Add(new("queue_size", Cfg.QueueSize, _common.Read16(Cfg.QueueSize), scope));
            list.Add(new("queue_msix_vector", Cfg.QueueMsixVector, _common.Read16(Cfg.QueueMsixVector), scope));
            list.Add(new("queue_enable", Cfg.QueueEnable, _common.Read16(Cfg.QueueEnable), scope));
            list.Add(new("queue_notify_off", Cfg.QueueNotifyOff, _common.Read16(Cfg.QueueNotifyOff), scope));
            if (_notifConfigData is not null)
            {
                list.Add(new("queue_notif_config_data", Cfg.QueueNotifConfigData, _common.Read16(Cfg.QueueNotifConfigData), scope));
            }
        }

        return list;
    }

    /// <summary>Masks and disables MSI-X and releases the vectors' memory. The device itself is reset by its driver.</summary>
    public void Dispose() => _interrupts.Dispose();

    private IRegisterWindow Map(VirtioPciCapability cap, string what) => _function.MapRange(cap.Bar, cap.Offset, cap.Length, what);

    // Feature bits travel 32 at a time through a select register (§4.1.4.3): words firstWord and firstWord + 1, low first.
    private ulong ReadDeviceFeatureWords(uint firstWord)
    {
        _common.Write32(Cfg.DeviceFeatureSelect, firstWord);
        ulong low = _common.Read32(Cfg.DeviceFeature);
        _common.Write32(Cfg.DeviceFeatureSelect, firstWord + 1);
        ulong high = _common.Read32(Cfg.DeviceFeature);
        return (high << 32) | low;
    }

    private void WriteDriverFeatureWords(uint firstWord, ulong features)
    {
        _common.Write32(Cfg.DriverFeatureSelect, firstWord);
        _common.Write32(Cfg.DriverFeature, (uint)features);
        _common.Write32(Cfg.DriverFeatureSelect, firstWord + 1);
        _common.Write32(Cfg.DriverFeature, (uint)(features >> 32));
    }

    private void SelectQueue(int queueIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        _common.Write16(Cfg.QueueSelect, (ushort)queueIndex);
    }

    private void Write64(ulong offset, ulong value)
    {
        _common.Write32(offset, (uint)value);
        _common.Write32(offset + 4, (uint)(value >> 32));
    }

    private IRegisterWindow Device(int offset, int width)
    {
        if (_device is null || offset < 0 || (ulong)offset + (ulong)width > _device.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Configuration offset {offset} (+{width}) lies outside the device configuration structure of {Description}.");
        }

        return _device;
    }

    private void ResetQuietly()
    {
        try
        {
            WriteStatus(VirtioDeviceStatus.Reset);
        }
        catch (VirtioException)
        {
            // The platform is gone; the caller's exception says what went wrong first.
        }
    }
}
