using VirtioNet.Core;
using VirtioNet.Platform;
using L = VirtioNet.Transports.Pci.VirtioPciLegacyRegisters;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// The legacy virtio-pci interface over I/O BAR 0: what a transitional device offers beside the modern one and what
/// pre-1.0 drivers speak. 32 feature bits, no FEATURES_OK, fixed queue sizes, one page-aligned block per queue given as
/// a page frame number, device configuration at 20 (24 while MSI-X is enabled). Ref: virtio v1.2 §4.1.4.8, §2.7.2.
/// </summary>
public sealed class VirtioPciLegacyTransport : IVirtioTransport, IRegisterDump, IQueueInterrupts
{
    /// <summary>The page size the Queue Address register counts in, and the used ring's alignment.</summary>
    public const int LegacyPageSize = L.PageSize;

    private readonly PciFunctionAccess _function;
    private readonly IRegisterWindow _registers;
    private readonly VirtioPciInterrupts _interrupts;
    private readonly ulong _configBase;

    /// <summary>Opens the legacy interface of <paramref name="function"/> (BAR 0 must be its assigned I/O BAR).</summary>
    /// <param name="function">The function's configuration space and assigned BARs.</param>
    /// <param name="mode">How the device interrupts.</param>
    /// <param name="intx">The platform's INTx line (for <see cref="VirtioPciInterruptMode.Intx"/>).</param>
    /// <param name="openVector">Opens MSI-X vector n (for the MSI-X modes); the transport owns and disposes what it returns.</param>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.NotVirtio"/> for a non-virtio function or a modern-only one (no legacy BAR 0);
    /// <see cref="VirtioErrorReason.InvalidConfiguration"/> for a malformed capability list or a BAR 0 too small.
    /// </exception>
    public VirtioPciLegacyTransport(
        PciFunctionAccess function,
        VirtioPciInterruptMode mode,
        IInterruptLine? intx = null,
        Func<int, IMessageInterruptLine>? openVector = null)
    {
        _function = function;
        DeviceId = VirtioPciIdentity.Check(function, out ushort pciDeviceId);
        PciDeviceId = pciDeviceId;
        if (!VirtioPciIdentity.IsTransitional(pciDeviceId))
        {
            throw new VirtioException(
                VirtioErrorReason.NotVirtio,
                $"PCI function {function.Name} ({VendorId:x4}:{pciDeviceId:x4}) is a modern-only device: it has no legacy interface.");
        }

        Capabilities = VirtioPciCapabilityParser.Parse(function.ConfigSpace, function.Name);
        IRegisterWindow bar0 = function.GetBar(0)
            ?? throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {function.Name}: legacy BAR 0 is absent or was not assigned.");
        if (bar0.Length < L.DeviceConfigWithMsix)
        {
            throw new VirtioException(VirtioErrorReason.InvalidConfiguration, $"PCI function {function.Name}: legacy BAR 0 is 0x{bar0.Length:x} bytes, too small for the 0x{L.DeviceConfigWithMsix:x}-byte header.");
        }

        _registers = bar0;
        _interrupts = new VirtioPciInterrupts(function, Capabilities, mode, intx, openVector);

        // §4.1.4.8: the two MSI-X vector registers exist only while MSI-X is enabled, and push device configuration to 24.
        _configBase = _interrupts.MsixEnabled ? L.DeviceConfigWithMsix : L.DeviceConfig;
    }

    /// <summary>The capabilities found in configuration space (MSI-X, and the modern ones a transitional device also has).</summary>
    public PciCapabilityList Capabilities { get; }

    /// <summary>The PCI device id (0x1000 for a transitional network device).</summary>
    public ushort PciDeviceId { get; }

    /// <summary>The interrupt kind in use.</summary>
    public VirtioPciInterruptMode InterruptMode => _interrupts.Mode;

    /// <inheritdoc />
    public string Description => $"virtio-pci legacy @ {_function.Name} ({_interrupts.ModeName})";

    /// <inheritdoc />
    public bool IsLegacy => true;

    /// <inheritdoc />
    public uint DeviceId { get; }

    /// <inheritdoc />
    public uint VendorId => VirtioPciIdentity.VendorId;

    /// <inheritdoc />
    public int LegacyQueueAlign => LegacyPageSize;

    /// <inheritdoc />
    public IInterruptLine? Interrupt => _interrupts.Line;

    /// <inheritdoc />
    public IInterruptLine? ConfigurationInterrupt => _interrupts.ConfigurationLine;

    /// <inheritdoc />
    public IInterruptLine? GetQueueInterrupt(int queueIndex) => _interrupts.QueueLine(queueIndex);

    /// <inheritdoc />
    public VirtioDeviceStatus ReadStatus() => (VirtioDeviceStatus)_registers.Read8(L.DeviceStatus);

    /// <inheritdoc />
    public void WriteStatus(VirtioDeviceStatus status)
    {
        _registers.Write8(L.DeviceStatus, (byte)status);
        if (status == VirtioDeviceStatus.Reset)
        {
            _interrupts.ForgetConfigVector();
        }
    }

    /// <inheritdoc />
    public ulong ReadDeviceFeatures() => _registers.Read32(L.DeviceFeatures);

    /// <inheritdoc />
    public void WriteDriverFeatures(ulong features) => _registers.Write32(L.DriverFeatures, (uint)features);

    /// <inheritdoc />
    public int GetQueueSizeMax(int queueIndex)
    {
        SelectQueue(queueIndex);
        ushort size = _registers.Read16(L.QueueSize);
        return size > 32768 ? throw new VirtioException(
            VirtioErrorReason.InvalidConfiguration,
            $"{Description}: queue {queueIndex} reports queue size {size}, above the 32768 the spec allows.") : size;
    }

    /// <inheritdoc />
    public bool IsQueueActive(int queueIndex)
    {
        SelectQueue(queueIndex);
        return _registers.Read32(L.QueueAddress) != 0;
    }

    /// <inheritdoc />
    public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        SetConfigVectorOnce();
        SelectQueue(queueIndex);

        // §4.1.4.8: the legacy queue size is the device's and read-only; a ring of another size would be misread.
        int deviceSize = _registers.Read16(L.QueueSize);
        if (size != deviceSize)
        {
            throw new ArgumentException($"{Description}: queue {queueIndex} has the fixed size {deviceSize} on the legacy interface; a ring of {size} cannot be used.", nameof(size));
        }

        // §2.7.2 (legacy): the device derives both rings' places from one page number.
        ulong expectedDriver = descriptorArea + (16UL * (ulong)size);
        ulong expectedDevice = AlignUp(expectedDriver + 6 + (2UL * (ulong)size), LegacyPageSize);
        if (descriptorArea % LegacyPageSize != 0 || driverArea != expectedDriver || deviceArea != expectedDevice)
        {
            throw new ArgumentException(
                $"{Description}: a legacy queue must be one page-aligned block (descriptors at 0x{descriptorArea:x}, available ring at " +
                $"0x{expectedDriver:x}, used ring at 0x{expectedDevice:x}); got 0x{driverArea:x} and 0x{deviceArea:x}.");
        }

        ulong pfn = descriptorArea / LegacyPageSize;
        if (pfn is 0 or > uint.MaxValue)
        {
            throw new ArgumentException($"{Description}: queue memory at 0x{descriptorArea:x} cannot be named by a 32-bit page frame number.");
        }

        if (_registers.Read32(L.QueueAddress) != 0)
        {
            throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{Description}: queue {queueIndex} is already in use (Queue Address is set).");
        }

        if (_interrupts.MsixEnabled)
        {
            _interrupts.SetQueueVector(_registers, L.QueueMsixVector, queueIndex);
        }

        _registers.Write32(L.QueueAddress, (uint)pfn);
    }

    /// <summary>
    /// Writes 0 to Queue Address. Note that QEMU treats this as a reset of the whole device (as early virtio-pci did),
    /// so it is only for tearing down.
    /// </summary>
    public void DeactivateQueue(int queueIndex)
    {
        SelectQueue(queueIndex);
        _registers.Write32(L.QueueAddress, 0);
    }

    /// <inheritdoc />
    public void Notify(int queueIndex) => _registers.Write16(L.QueueNotify, (ushort)queueIndex);

    /// <inheritdoc />
    public InterruptCause ReadAndAcknowledgeInterrupt() => _interrupts.Acknowledge(() => _registers.Read8(L.IsrStatus));

    /// <inheritdoc />
    public uint ReadConfigGeneration() => 0;

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
            new("DeviceFeatures", L.DeviceFeatures, _registers.Read32(L.DeviceFeatures), "device"),
            new("DriverFeatures", L.DriverFeatures, _registers.Read32(L.DriverFeatures), "device"),
            new("DeviceStatus", L.DeviceStatus, _registers.Read8(L.DeviceStatus), "device"),
        };
        if (_interrupts.MsixEnabled)
        {
            list.Add(new("config_msix_vector", L.ConfigMsixVector, _registers.Read16(L.ConfigMsixVector), "device"));
        }

        for (int q = 0; q < queueCount; q++)
        {
            SelectQueue(q);
            string scope = $"queue {q}";
            list.Add(new("QueueSize", L.QueueSize, _registers.Read16(L.QueueSize), scope));
            list.Add(new("QueueAddress", L.QueueAddress, _registers.Read32(L.QueueAddress), scope));
            if (_interrupts.MsixEnabled)
            {
                list.Add(new("queue_msix_vector", L.QueueMsixVector, _registers.Read16(L.QueueMsixVector), scope));
            }
        }

        return list;
    }

    /// <summary>Masks and disables MSI-X and releases the vectors' memory. The device itself is reset by its driver.</summary>
    public void Dispose() => _interrupts.Dispose();

    // §4.1.4.8: config_msix_vector exists only while MSI-X is enabled.
    private void SetConfigVectorOnce()
    {
        if (_interrupts.MsixEnabled)
        {
            _interrupts.SetConfigVectorOnce(_registers, L.ConfigMsixVector);
        }
    }

    private void SelectQueue(int queueIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        _registers.Write16(L.QueueSelect, (ushort)queueIndex);
    }

    private ulong ConfigOffset(int offset, int width)
    {
        ulong address = _configBase + (ulong)offset;
        if (offset < 0 || address + (ulong)width > _registers.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Configuration offset {offset} (+{width}) lies outside BAR 0 of {Description}.");
        }

        return address;
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
