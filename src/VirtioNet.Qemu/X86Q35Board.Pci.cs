namespace VirtioNet.Qemu;

/// <summary>
/// PCI on q35: enumeration of the root bus through ECAM with BAR placement (I/O BARs in port space, memory BARs in
/// the 32-bit hole), and virtio-pci transports with INTx through the IOAPIC or MSI-X vectors whose messages land in
/// guest RAM, exactly as on riscv64 <c>virt</c> (see docs/PCI.md).
/// </summary>
public sealed partial class X86Q35Board
{
    // Guards the creation of the root bus.
    private readonly Lock _pciLock = new();

    // The root bus (enumeration, windows, transports), shared with the riscv64 virt board.
    private QemuPciRootBus? _pciBus;

    /// <summary>
    /// The interrupt kind <see cref="OpenPciNetDevice"/> uses in interrupt mode. Default <see cref="VirtioPciInterruptMode.Intx"/>.
    /// </summary>
    public VirtioPciInterruptMode PciInterruptMode { get; set; } = VirtioPciInterruptMode.Intx;

    /// <summary>
    /// Every function on the root bus (MCH, ICH9 functions, the net device). The first call enumerates, sizes the BARs,
    /// places them in the windows and enables decoding and bus mastering; later calls return the same list.
    /// </summary>
    public IReadOnlyList<PciFunction> EnumeratePci() => PciBus.Enumerate();

    /// <summary>The first virtio network function (1af4:1000 with subsystem 1, or 1af4:1041).</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NoDevice"/> when there is none.</exception>
    public PciFunction FindPciNetFunction() => PciBus.FindNetFunction();

    /// <summary>
    /// The function's configuration space (ECAM) and assigned BARs as register windows: memory BARs over qtest
    /// memory accesses, I/O BARs over qtest port accesses (on x86 an I/O BAR's address is a port number).
    /// </summary>
    public PciFunctionAccess OpenPciFunction(PciFunction function) => PciBus.Open(function);

    /// <summary>Walks the function's capability list (bounds-checked).</summary>
    public PciCapabilityList ReadPciCapabilities(PciFunction function) => PciBus.ReadCapabilities(function);

    /// <summary>
    /// The IOAPIC input (GSI) the function's INTx pin raises: its PIRQ from the board's wiring
    /// (<see cref="Q35IntxRouting"/>), then 16 + PIRQ.
    /// </summary>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.MalformedDescription"/> when the function has no pin or is not on the root bus.
    /// </exception>
    public int RoutePciIntx(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        return FindPciIntxLine(function) is { } gsi
            ? (int)gsi
            : throw new VirtioException(
                VirtioErrorReason.MalformedDescription,
                $"PCI function {function.Address} (pin {function.InterruptPin}) has no INTx route: no pin, or not on the root bus.");
    }

    /// <inheritdoc />
    public uint? FindPciIntxLine(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        if (function.InterruptPin is < 1 or > 4 || function.Address.Bus != PciHost.BusStart)
        {
            return null;
        }

        return (uint)Q35IntxRouting.GsiOf(function.Address.Device, function.InterruptPin);
    }

    /// <summary>
    /// Opens a virtio-pci transport on <paramref name="function"/>: the legacy interface when <paramref name="legacy"/>
    /// is true, the modern one when false, and when null the modern one if the function offers it.
    /// </summary>
    /// <param name="function">A virtio function from <see cref="EnumeratePci"/>.</param>
    /// <param name="legacy">Which interface to drive.</param>
    /// <param name="mode">INTx (its IOAPIC input), MSI-X (vectors written into guest RAM cells), or none.</param>
    public IVirtioTransport OpenPciTransport(PciFunction function, bool? legacy, VirtioPciInterruptMode mode) =>
        PciBus.OpenTransport(function, legacy, mode);

    /// <summary>
    /// Brings up the first virtio network function: the interface chosen as <see cref="OpenPciTransport"/> does, the
    /// interrupt kind <paramref name="mode"/> (default <see cref="PciInterruptMode"/>) in interrupt mode, none in poll mode.
    /// </summary>
    public VirtioNetDevice OpenPciNetDevice(VirtioNetOptions options, bool? legacy = null, VirtioPciInterruptMode? mode = null) =>
        PciBus.OpenNetDevice(options, legacy, mode ?? PciInterruptMode);

    // INTx arrives at the IOAPIC input of the function's PIRQ; I/O BARs are reached in port space (an I/O BAR's address
    // is a port number on x86).
    private QemuPciRootBus PciBus
    {
        get
        {
            lock (_pciLock)
            {
                return _pciBus ??= new QemuPciRootBus(Machine, () => PciHost, ioBarsInPortSpace: true, function => Machine.OpenIoapicLine(RoutePciIntx(function)));
            }
        }
    }
}
