using VirtioNet.Core;
using VirtioNet.Discovery.Pci;
using VirtioNet.Net;
using VirtioNet.Platform;
using VirtioNet.Transports;
using VirtioNet.Transports.Pci;

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

    // The host bridge and the functions found behind it, once enumerated and assigned.
    private PciHostBridge? _pciHost;
    private IReadOnlyList<PciFunction>? _pciFunctions;

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
    public IReadOnlyList<PciFunction> EnumeratePci()
    {
        PciHostBridge host = PciHost;
        lock (_pciLock)
        {
            if (_pciFunctions is null)
            {
                IReadOnlyList<PciFunction> functions = PciEnumerator.Enumerate(host, Machine.OpenRegisterWindow);
                PciEnumerator.AssignResources(host, functions, Machine.OpenRegisterWindow);
                _pciFunctions = functions;
            }

            return _pciFunctions;
        }
    }

    /// <summary>The first virtio network function (1af4:1000 with subsystem 1, or 1af4:1041).</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NoDevice"/> when there is none.</exception>
    public PciFunction FindPciNetFunction()
    {
        return VirtioPciIdentity.FindFirst(EnumeratePci(), VirtioDeviceTypes.Network, PciHost.NodePath);
    }

    /// <summary>The function's configuration space and assigned BARs as register windows.</summary>
    public PciFunctionAccess OpenPciFunction(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        IRegisterWindow config = Machine.OpenRegisterWindow(function.ConfigAddress, PciHeaderRegisters.ExtendedConfigSpaceSize);
        var bars = new IRegisterWindow?[PciFunctionAccess.BarCount];
        foreach (PciBar bar in function.Bars)
        {
            if (bar.IsAssigned)
            {
                bars[bar.Index] = Machine.OpenRegisterWindow(bar.CpuAddress, bar.Size);
            }
        }

        return new PciFunctionAccess(function.Address.ToString(), config, bars);
    }

    /// <summary>Walks the function's capability list (bounds-checked).</summary>
    public PciCapabilityList ReadPciCapabilities(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        IRegisterWindow config = Machine.OpenRegisterWindow(function.ConfigAddress, PciHeaderRegisters.ExtendedConfigSpaceSize);
        return VirtioPciCapabilityParser.Parse(config, function.Address.ToString());
    }

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
    /// <remarks>Issue 3 (<see cref="IQemuBoard"/>): the PLIC source from the interrupt-map, null when the function has no pin or no entry.</remarks>
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
    public IVirtioTransport OpenPciTransport(PciFunction function, bool? legacy, VirtioPciInterruptMode mode)
    {
        ArgumentNullException.ThrowIfNull(function);
        PciFunctionAccess access = OpenPciFunction(function);
        bool useLegacy = legacy ?? !VirtioPciCapabilityParser.Parse(access.ConfigSpace, access.Name).HasModernInterface;
        IInterruptLine? intx = mode == VirtioPciInterruptMode.Intx ? Machine.OpenPlicLine((int)RoutePciIntx(function).Line) : null;
        Func<int, IMessageInterruptLine>? vectors = mode is VirtioPciInterruptMode.MsixShared or VirtioPciInterruptMode.MsixPerQueue
            ? vector => new MemoryCellInterruptLine(Dma, vector)
            : null;
        return useLegacy
            ? new VirtioPciLegacyTransport(access, mode, intx, vectors)
            : new VirtioPciModernTransport(access, mode, intx, vectors);
    }

    /// <summary>
    /// Brings up the first virtio network function: the interface chosen as <see cref="OpenPciTransport"/> does, the
    /// interrupt kind <paramref name="mode"/> (default <see cref="PciInterruptMode"/>) in interrupt mode, none in poll mode.
    /// </summary>
    public VirtioNetDevice OpenPciNetDevice(VirtioNetOptions options, bool? legacy = null, VirtioPciInterruptMode? mode = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        VirtioPciInterruptMode interrupts = options.Mode == OperationMode.Interrupt ? mode ?? PciInterruptMode : VirtioPciInterruptMode.None;
        IVirtioTransport transport = OpenPciTransport(FindPciNetFunction(), legacy, interrupts);
        try
        {
            return VirtioNetDevice.Open(transport, Dma, options);
        }
        catch
        {
            transport.Dispose();
            throw;
        }
    }
}
