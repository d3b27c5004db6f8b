namespace VirtioNet.Qemu;

/// <summary>
/// PCI on the board: the ECAM host bridge from the device tree, enumeration of the root bus with BAR placement (no
/// firmware ran, so the board does what firmware would), and virtio-pci transports with INTx through the PLIC or
/// MSI-X vectors whose messages land in guest RAM (see docs/PCI.md).
/// </summary>
public sealed partial class RiscvVirtBoard
{
    // Guards the one-time enumeration.
    private readonly Lock _pciLock = new();

    // The host bridge, once found in the device tree.
    private PciHostBridge? _pciHost;

    // The root bus behind it (enumeration, windows, transports), shared with the q35 board.
    private QemuPciRootBus? _pciBus;

    /// <summary>
    /// The interrupt kind <see cref="OpenPciNetDevice"/> uses in interrupt mode. Default <see cref="VirtioPciInterruptMode.Intx"/>.
    /// </summary>
    public VirtioPciInterruptMode PciInterruptMode { get; set; } = VirtioPciInterruptMode.Intx;

    /// <summary>The generic ECAM host bridge the device tree describes.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NoDevice"/> when the tree has none.</exception>
    public PciHostBridge PciHost
    {
        get
        {
            lock (_pciLock)
            {
                if (_pciHost is null)
                {
                    IReadOnlyList<PciHostBridge> bridges = PciHostBridgeDiscovery.Find(DeviceTree);
                    _pciHost = bridges.Count > 0
                        ? bridges[0]
                        : throw new VirtioException(VirtioErrorReason.NoDevice, "The device tree describes no pci-host-ecam-generic host bridge.");
                }

                return _pciHost;
            }
        }
    }

    /// <summary>
    /// Every function on the host bridge's root bus. The first call enumerates, sizes the BARs, places them in the
    /// bridge's windows and enables decoding and bus mastering; later calls return the same list.
    /// </summary>
    public IReadOnlyList<PciFunction> EnumeratePci() => PciBus.Enumerate();

    /// <summary>The first virtio network function (1af4:1000 with subsystem 1, or 1af4:1041).</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NoDevice"/> when there is none.</exception>
    public PciFunction FindPciNetFunction() => PciBus.FindNetFunction();

    /// <summary>The function's configuration space and assigned BARs as register windows.</summary>
    public PciFunctionAccess OpenPciFunction(PciFunction function) => PciBus.Open(function);

    /// <summary>Walks the function's capability list (bounds-checked).</summary>
    public PciCapabilityList ReadPciCapabilities(PciFunction function) => PciBus.ReadCapabilities(function);

    /// <summary>Where the function's INTx pin arrives at the PLIC, from the host bridge's <c>interrupt-map</c>.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.MalformedDescription"/> when the function has no pin or the map has no entry.</exception>
    public PciIntxRoute RoutePciIntx(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        if (function.InterruptPin == 0 || !PciHost.TryRouteIntx(function.Address, function.InterruptPin, out PciIntxRoute? route))
        {
            throw new VirtioException(
                VirtioErrorReason.MalformedDescription,
                $"PCI function {function.Address} (pin {function.InterruptPin}) has no entry in the interrupt-map of {PciHost.NodePath}.");
        }

        return route!;
    }

    /// <inheritdoc />
    /// <remarks>The PLIC source from the interrupt-map, null when the function has no pin or no entry.</remarks>
    public uint? FindPciIntxLine(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return function.InterruptPin != 0 && PciHost.TryRouteIntx(function.Address, function.InterruptPin, out PciIntxRoute? route) ? route!.Line : null;
    }

    /// <summary>
    /// Opens a virtio-pci transport on <paramref name="function"/>: the legacy interface when <paramref name="legacy"/>
    /// is true, the modern one when false, and when null the modern one if the function offers it.
    /// </summary>
    /// <param name="function">A virtio function from <see cref="EnumeratePci"/>.</param>
    /// <param name="legacy">Which interface to drive.</param>
    /// <param name="mode">INTx (its PLIC line from the interrupt-map), MSI-X (vectors written into guest RAM cells), or none.</param>
    public IVirtioTransport OpenPciTransport(PciFunction function, bool? legacy, VirtioPciInterruptMode mode) =>
        PciBus.OpenTransport(function, legacy, mode);

    /// <summary>
    /// Brings up the first virtio network function: the interface chosen as <see cref="OpenPciTransport"/> does, the
    /// interrupt kind <paramref name="mode"/> (default <see cref="PciInterruptMode"/>) in interrupt mode, none in poll mode.
    /// </summary>
    public VirtioNetDevice OpenPciNetDevice(VirtioNetOptions options, bool? legacy = null, VirtioPciInterruptMode? mode = null) =>
        PciBus.OpenNetDevice(options, legacy, mode ?? PciInterruptMode);

    // INTx arrives at the PLIC line the interrupt-map names; I/O BARs are memory-mapped through the bridge's I/O window.
    private QemuPciRootBus PciBus
    {
        get
        {
            lock (_pciLock)
            {
                return _pciBus ??= new QemuPciRootBus(Machine, () => PciHost, ioBarsInPortSpace: false, function => Machine.OpenPlicLine((int)RoutePciIntx(function).Line));
            }
        }
    }
}
