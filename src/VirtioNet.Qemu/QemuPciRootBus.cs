namespace VirtioNet.Qemu;

/// <summary>
/// The root PCI bus of a QEMU board, as firmware would have left it: enumerated once, BARs sized and placed, decoding
/// and bus mastering on; register windows on each function; virtio-pci transports with INTx or MSI-X vectors whose
/// messages land in guest RAM cells (docs/PCI.md). The boards differ only in their host bridge, in how an I/O BAR is
/// reached (memory-mapped on riscv64 <c>virt</c>, port space on q35) and in where INTx arrives, which they supply.
/// </summary>
internal sealed class QemuPciRootBus(QemuMachine machine, Func<PciHostBridge> host, bool ioBarsInPortSpace, Func<PciFunction, IInterruptLine> openIntx)
{
    // Guards the one-time enumeration.
    private readonly Lock _lock = new();

    // The functions found behind the host bridge, once enumerated and assigned.
    private IReadOnlyList<PciFunction>? _functions;

    /// <summary>Every function on the root bus; the first call enumerates and assigns, later calls return the same list.</summary>
    public IReadOnlyList<PciFunction> Enumerate()
    {
        PciHostBridge bridge = host();
        lock (_lock)
        {
            if (_functions is null)
            {
                IReadOnlyList<PciFunction> functions = PciEnumerator.Enumerate(bridge, machine.OpenRegisterWindow);
                PciEnumerator.AssignResources(bridge, functions, machine.OpenRegisterWindow);
                _functions = functions;
            }

            return _functions;
        }
    }

    /// <summary>The first virtio network function (1af4:1000 with subsystem 1, or 1af4:1041).</summary>
    public PciFunction FindNetFunction() => VirtioPciIdentity.FindFirst(Enumerate(), VirtioDeviceTypes.Network, host().NodePath);

    /// <summary>The function's configuration space (ECAM) and assigned BARs as register windows.</summary>
    public PciFunctionAccess Open(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        IRegisterWindow config = machine.OpenRegisterWindow(function.ConfigAddress, PciHeaderRegisters.ExtendedConfigSpaceSize);
        var bars = new IRegisterWindow?[PciFunctionAccess.BarCount];
        foreach (PciBar bar in function.Bars)
        {
            if (bar.IsAssigned)
            {
                bars[bar.Index] = ioBarsInPortSpace && bar.Space == PciAddressSpace.Io
                    ? machine.OpenPortWindow(bar.CpuAddress, bar.Size)
                    : machine.OpenRegisterWindow(bar.CpuAddress, bar.Size);
            }
        }

        return new PciFunctionAccess(function.Address.ToString(), config, bars);
    }

    /// <summary>Walks the function's capability list (bounds-checked).</summary>
    public PciCapabilityList ReadCapabilities(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        IRegisterWindow config = machine.OpenRegisterWindow(function.ConfigAddress, PciHeaderRegisters.ExtendedConfigSpaceSize);
        return VirtioPciCapabilityParser.Parse(config, function.Address.ToString());
    }

    /// <summary>A virtio-pci transport on the function: legacy, modern, or (null) modern when the function offers it.</summary>
    public IVirtioTransport OpenTransport(PciFunction function, bool? legacy, VirtioPciInterruptMode mode)
    {
        ArgumentNullException.ThrowIfNull(function);
        PciFunctionAccess access = Open(function);
        bool useLegacy = legacy ?? !VirtioPciCapabilityParser.Parse(access.ConfigSpace, access.Name).HasModernInterface;
        IInterruptLine? intx = mode == VirtioPciInterruptMode.Intx ? openIntx(function) : null;

        // The message address is a RAM cell, not an interrupt controller's: the device's write reaches RAM through its
        // bus-master address space, and this process watches the cell (docs/PCI.md).
        Func<int, IMessageInterruptLine>? vectors = mode is VirtioPciInterruptMode.MsixShared or VirtioPciInterruptMode.MsixPerQueue
            ? vector => new MemoryCellInterruptLine(machine.DmaAllocator, vector)
            : null;
        return useLegacy
            ? new VirtioPciLegacyTransport(access, mode, intx, vectors)
            : new VirtioPciModernTransport(access, mode, intx, vectors);
    }

    /// <summary>Brings up the first virtio network function with the interrupt kind given (none in poll mode).</summary>
    public VirtioNetDevice OpenNetDevice(VirtioNetOptions options, bool? legacy, VirtioPciInterruptMode interruptMode)
    {
        ArgumentNullException.ThrowIfNull(options);
        VirtioPciInterruptMode interrupts = options.OperationMode != OperationMode.Poll ? interruptMode : VirtioPciInterruptMode.None;
        IVirtioTransport transport = OpenTransport(FindNetFunction(), legacy, interrupts);
        try
        {
            return VirtioNetDevice.Open(transport, machine.DmaAllocator, options);
        }
        catch
        {
            transport.Dispose();
            throw;
        }
    }
}
