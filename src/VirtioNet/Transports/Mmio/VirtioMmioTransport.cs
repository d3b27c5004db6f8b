using VirtioNet.Core;
using VirtioNet.Platform;
using R = VirtioNet.Transports.Mmio.VirtioMmioRegisters;

namespace VirtioNet.Transports.Mmio;

/// <summary>
/// The virtio-mmio transport in both register layouts: version 2 (modern) and version 1 (legacy, what QEMU's riscv64
/// <c>virt</c> machine gives by default). Ref: virtio v1.2 §4.2.
/// </summary>
public sealed class VirtioMmioTransport : IVirtioTransport, IRegisterDump
{
    /// <summary>The page size written to GuestPageSize and counted in by QueuePFN on the legacy layout.</summary>
    public const int LegacyPageSize = 4096;

    private readonly IRegisterWindow _registers;

    /// <summary>
    /// Opens the device in <paramref name="registers"/>, checking the magic value and the layout version.
    /// </summary>
    /// <param name="registers">The register window (at least 0x100 bytes plus the configuration space).</param>
    /// <param name="baseAddress">The window's physical address, for messages and dumps.</param>
    /// <param name="interrupt">The line the device raises, or null to drive it by polling only.</param>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NotVirtio"/> or <see cref="VirtioErrorReason.UnsupportedVersion"/>.</exception>
    public VirtioMmioTransport(IRegisterWindow registers, ulong baseAddress, IInterruptLine? interrupt)
    {
        ArgumentNullException.ThrowIfNull(registers);
        if (registers.Length < R.Config)
        {
            throw new ArgumentException($"A virtio-mmio window needs at least 0x{R.Config:x} bytes; this one has 0x{registers.Length:x}.", nameof(registers));
        }

        _registers = registers;
        BaseAddress = baseAddress;
        Interrupt = interrupt;

        // §4.2.2.2: the driver MUST ignore a device whose MagicValue is not 0x74726976 or whose Version it does not know.
        uint magic = registers.Read32(R.MagicValue);
        if (magic != R.Magic)
        {
            throw new VirtioException(
                VirtioErrorReason.NotVirtio,
                $"No virtio-mmio device at 0x{baseAddress:x}: magic value 0x{magic:x8}, expected 0x{R.Magic:x8} (\"virt\").");
        }

        Version = registers.Read32(R.Version);
        if (Version is not (1 or 2))
        {
            throw new VirtioException(
                VirtioErrorReason.UnsupportedVersion,
                $"virtio-mmio device at 0x{baseAddress:x} has register layout version {Version}; this driver knows 1 (legacy) and 2.");
        }

        DeviceId = registers.Read32(R.DeviceId);
        VendorId = registers.Read32(R.VendorId);
    }

    /// <summary>The window's physical address.</summary>
    public ulong BaseAddress { get; }

    /// <summary>The register layout version: 1 legacy, 2 modern.</summary>
    public uint Version { get; }

    /// <inheritdoc />
    public string Description => $"virtio-mmio v{Version} @ 0x{BaseAddress:x}";

    /// <inheritdoc />
    public bool IsLegacy => Version == 1;

    /// <inheritdoc />
    public uint DeviceId { get; }

    /// <inheritdoc />
    public uint VendorId { get; }

    /// <inheritdoc />
    public int LegacyQueueAlign => IsLegacy ? LegacyPageSize : 0;

    /// <inheritdoc />
    public IInterruptLine? Interrupt { get; }

    /// <inheritdoc />
    public VirtioDeviceStatus ReadStatus() => (VirtioDeviceStatus)(byte)_registers.Read32(R.Status);

    /// <inheritdoc />
    public void WriteStatus(VirtioDeviceStatus status) => _registers.Write32(R.Status, (uint)status);

    /// <inheritdoc />
    public ulong ReadDeviceFeatures()
    {
        _registers.Write32(R.DeviceFeaturesSel, 0);
        ulong low = _registers.Read32(R.DeviceFeatures);
        if (IsLegacy)
        {
            // §4.2.4: the legacy HostFeatures register has only 32 bits.
            return low;
        }

        _registers.Write32(R.DeviceFeaturesSel, 1);
        ulong high = _registers.Read32(R.DeviceFeatures);
        return (high << 32) | low;
    }

    /// <inheritdoc />
    public void WriteDriverFeatures(ulong features)
    {
        _registers.Write32(R.DriverFeaturesSel, 0);
        _registers.Write32(R.DriverFeatures, (uint)features);
        if (!IsLegacy)
        {
            _registers.Write32(R.DriverFeaturesSel, 1);
            _registers.Write32(R.DriverFeatures, (uint)(features >> 32));
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Legacy (version 1): 0, no register access (§4.2.4). Version 2: DeviceFeaturesSel 2 and 3. QEMU before 10.1 turns
    /// any non-zero DeviceFeaturesSel into 1 (hw/virtio/virtio-mmio.c), so words 2 and 3 read back word 1; word 1 of a
    /// modern device holds VIRTIO_F_VERSION_1, and a device that really offers bits 96 to 127 equal to bits 32 to 63
    /// would offer bits no device type defines, so both words equal to word 1 are taken as "no bits above 63".
    /// </remarks>
    public ulong ReadDeviceFeaturesHigh()
    {
        if (IsLegacy)
        {
            return 0;
        }

        _registers.Write32(R.DeviceFeaturesSel, 1);
        uint word1 = _registers.Read32(R.DeviceFeatures);
        _registers.Write32(R.DeviceFeaturesSel, 2);
        uint word2 = _registers.Read32(R.DeviceFeatures);
        _registers.Write32(R.DeviceFeaturesSel, 3);
        uint word3 = _registers.Read32(R.DeviceFeatures);
        _registers.Write32(R.DeviceFeaturesSel, 0);
        return word2 == word1 && word3 == word1 ? 0 : ((ulong)word3 << 32) | word2;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Version 2 only: DriverFeaturesSel 2 and 3. On a QEMU that folds selects above 1 onto 1 these writes land in word
    /// 1, which is why the initializer writes them before words 0 and 1 (and only when bits above 63 were offered).
    /// </remarks>
    public void WriteDriverFeaturesHigh(ulong features)
    {
        if (IsLegacy)
        {
            if (features != 0)
            {
                throw new NotSupportedException($"{Description}: a legacy interface has no feature bits above 31.");
            }

            return;
        }

        _registers.Write32(R.DriverFeaturesSel, 2);
        _registers.Write32(R.DriverFeatures, (uint)features);
        _registers.Write32(R.DriverFeaturesSel, 3);
        _registers.Write32(R.DriverFeatures, (uint)(features >> 32));
    }

    /// <inheritdoc />
    public int GetQueueSizeMax(int queueIndex)
    {
        SelectQueue(queueIndex);
        uint max = _registers.Read32(R.QueueNumMax);

        // A device that claims more than the split ring can hold (§2.7: at most 32768) is not believed.
        return max > 32768 ? throw new VirtioException(
            VirtioErrorReason.InvalidConfiguration,
            $"{Description}: queue {queueIndex} reports QueueNumMax {max}, above the 32768 the spec allows.") : (int)max;
    }

    /// <inheritdoc />
    public bool IsQueueActive(int queueIndex)
    {
        SelectQueue(queueIndex);
        return IsLegacy ? _registers.Read32(R.QueuePfn) != 0 : _registers.Read32(R.QueueReady) != 0;
    }

    /// <inheritdoc />
    public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        SelectQueue(queueIndex);
        if (IsLegacy)
        {
            ActivateLegacyQueue(queueIndex, size, descriptorArea, driverArea, deviceArea);
            return;
        }

        // §4.2.3.2: select, check it is not live, set the size and the three areas, then QueueReady.
        if (_registers.Read32(R.QueueReady) != 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: queue {queueIndex} is already in use (QueueReady is 1).");
        }

        _registers.Write32(R.QueueNum, (uint)size);
        _registers.Write32(R.QueueDescLow, (uint)descriptorArea);
        _registers.Write32(R.QueueDescHigh, (uint)(descriptorArea >> 32));
        _registers.Write32(R.QueueDriverLow, (uint)driverArea);
        _registers.Write32(R.QueueDriverHigh, (uint)(driverArea >> 32));
        _registers.Write32(R.QueueDeviceLow, (uint)deviceArea);
        _registers.Write32(R.QueueDeviceHigh, (uint)(deviceArea >> 32));
        _registers.Write32(R.QueueReady, 1);
    }

    private void ActivateLegacyQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        // §4.2.4 and §2.7.2 (legacy): the device computes the rings' places from one page number, so the caller's
        // three areas must sit exactly where it will look for them.
        ulong expectedDriver = descriptorArea + (16UL * (ulong)size);
        ulong expectedDevice = AlignUp(expectedDriver + 6 + (2UL * (ulong)size), LegacyPageSize);
        if (descriptorArea % LegacyPageSize != 0 || driverArea != expectedDriver || deviceArea != expectedDevice)
        {
            throw new ArgumentException(
                $"{Description}: a legacy queue must be one page-aligned block (descriptors at 0x{descriptorArea:x}, available ring at " +
                $"0x{expectedDriver:x}, used ring at 0x{expectedDevice:x}); got 0x{driverArea:x} and 0x{deviceArea:x}.");
        }

        ulong pfn = descriptorArea / LegacyPageSize;
        if (pfn > uint.MaxValue)
        {
            throw new ArgumentException($"{Description}: queue memory at 0x{descriptorArea:x} lies above what a 32-bit QueuePFN can address.");
        }

        if (_registers.Read32(R.QueuePfn) != 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: queue {queueIndex} is already in use (QueuePFN is set).");
        }

        // GuestPageSize before any QueuePFN (§4.2.4); written every time since a reset may clear it.
        _registers.Write32(R.GuestPageSize, LegacyPageSize);
        _registers.Write32(R.QueueNum, (uint)size);
        _registers.Write32(R.QueueAlign, LegacyPageSize);
        _registers.Write32(R.QueuePfn, (uint)pfn);
    }

    /// <inheritdoc />
    public void DeactivateQueue(int queueIndex)
    {
        SelectQueue(queueIndex);
        _registers.Write32(IsLegacy ? R.QueuePfn : R.QueueReady, 0);
    }

    /// <inheritdoc />
    public void Notify(int queueIndex) => _registers.Write32(R.QueueNotify, (uint)queueIndex);

    /// <inheritdoc />
    /// <remarks>§4.2.3.3: with VIRTIO_F_NOTIFICATION_DATA the QueueNotify write carries the data instead of the bare index.</remarks>
    public void Notify(int queueIndex, uint notificationData)
    {
        if ((ushort)notificationData != queueIndex)
        {
            throw new ArgumentException($"Notification data 0x{notificationData:x8} is for queue {(ushort)notificationData}, not {queueIndex}.", nameof(notificationData));
        }

        _registers.Write32(R.QueueNotify, notificationData);
    }

    /// <inheritdoc />
    /// <remarks>
    /// §4.2.3.2 (modern layout only): select, write 1 to QueueReset, and read it back until 0; QueueReady must then read 0
    /// too. The legacy layout has no such register.
    /// </remarks>
    public void ResetQueue(int queueIndex)
    {
        if (IsLegacy)
        {
            throw new NotSupportedException($"{Description}: the legacy register layout has no QueueReset; reset the device instead.");
        }

        SelectQueue(queueIndex);
        _registers.Write32(R.QueueReset, 1);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (_registers.Read32(R.QueueReset) != 0)
        {
            if (clock.Elapsed > VirtioDeviceInitializer.ResetTimeout)
            {
                throw new VirtioException(VirtioErrorReason.Timeout, $"{Description}: queue {queueIndex} did not finish its reset within {VirtioDeviceInitializer.ResetTimeout.TotalSeconds} s (QueueReset still reads 1).");
            }

            Thread.Sleep(1);
        }

        // A device that ignored the write (one without the register) still shows the queue ready: the reset did not happen.
        if (_registers.Read32(R.QueueReady) != 0)
        {
            throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{Description}: queue {queueIndex} still reads QueueReady 1 after QueueReset; the device did not reset it.");
        }
    }

    /// <inheritdoc />
    public InterruptCause ReadAndAcknowledgeInterrupt()
    {
        // §4.2.3.4: read InterruptStatus, then write the handled bits to InterruptACK, which lowers the line.
        uint status = _registers.Read32(R.InterruptStatus);
        if (status != 0)
        {
            _registers.Write32(R.InterruptAck, status);
        }

        return (InterruptCause)(status & 3);
    }

    /// <inheritdoc />
    public uint ReadConfigGeneration() => IsLegacy ? 0 : _registers.Read32(R.ConfigGeneration);

    /// <inheritdoc />
    public byte ReadConfig8(int offset) => _registers.Read8(ConfigOffset(offset, 1));

    /// <inheritdoc />
    public ushort ReadConfig16(int offset) => _registers.Read16(ConfigOffset(offset, 2));

    /// <inheritdoc />
    public uint ReadConfig32(int offset) => _registers.Read32(ConfigOffset(offset, 4));

    /// <inheritdoc />
    public void WriteConfig8(int offset, byte value) => _registers.Write8(ConfigOffset(offset, 1), value);

    /// <inheritdoc />
    public IReadOnlyList<RegisterValue> ReadRegisters(int queueCount)
    {
        var list = new List<RegisterValue>
        {
            new("MagicValue", R.MagicValue, _registers.Read32(R.MagicValue), "device"),
            new("Version", R.Version, _registers.Read32(R.Version), "device"),
            new("DeviceID", R.DeviceId, _registers.Read32(R.DeviceId), "device"),
            new("VendorID", R.VendorId, _registers.Read32(R.VendorId), "device"),
            new("DeviceFeatures", R.DeviceFeatures, ReadDeviceFeatures(), "device"),
            new("InterruptStatus", R.InterruptStatus, _registers.Read32(R.InterruptStatus), "device"),
            new("Status", R.Status, _registers.Read32(R.Status), "device"),
        };
        if (!IsLegacy)
        {
            list.Add(new("ConfigGeneration", R.ConfigGeneration, _registers.Read32(R.ConfigGeneration), "device"));
        }

        for (int q = 0; q < queueCount; q++)
        {
            SelectQueue(q);
            string scope = $"queue {q}";
            list.Add(new("QueueNumMax", R.QueueNumMax, _registers.Read32(R.QueueNumMax), scope));
            list.Add(IsLegacy
                ? new("QueuePFN", R.QueuePfn, _registers.Read32(R.QueuePfn), scope)
                : new("QueueReady", R.QueueReady, _registers.Read32(R.QueueReady), scope));
        }

        return list;
    }

    /// <summary>Nothing to release: the window and the line belong to the platform.</summary>
    public void Dispose()
    {
    }

    private void SelectQueue(int queueIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        _registers.Write32(R.QueueSel, (uint)queueIndex);
    }

    private ulong ConfigOffset(int offset, int width)
    {
        ulong address = R.Config + (ulong)offset;
        if (offset < 0 || address + (ulong)width > _registers.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Configuration offset {offset} (+{width}) lies outside the register window of {Description}.");
        }

        return address;
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
