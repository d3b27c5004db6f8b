namespace VirtioNet.Qemu;

/// <summary>
/// What every QEMU board offers a tool or a test, whichever machine it is (<see cref="RiscvVirtBoard"/>,
/// <see cref="X86Q35Board"/>): the running machine, DMA memory, the PCI functions with their BARs placed, and the net
/// device brought up. How the board found its devices (a device tree, chipset knowledge) stays inside it.
/// </summary>
public interface IQemuBoard : IDisposable
{
    /// <summary>The running QEMU.</summary>
    QemuMachine Machine { get; }

    /// <summary>Memory the devices can reach: guest RAM shared with this process.</summary>
    IDmaAllocator Dma { get; }

    /// <summary>The interrupt kind a PCI net device uses in interrupt mode.</summary>
    VirtioPciInterruptMode PciInterruptMode { get; set; }

    /// <summary>
    /// Brings up the net device: at the virtio-mmio <paramref name="baseAddress"/> where the board has slots, else the
    /// first network device (a PCI function when the machine's net device is one).
    /// </summary>
    VirtioNetDevice OpenNetDevice(ulong? baseAddress, VirtioNetOptions options);

    /// <summary>Sets the net device's link through the QEMU monitor (<c>set_link</c>).</summary>
    void SetLink(bool up);

    /// <summary>Every function on the root bus; the first call sizes and places the BARs and enables decoding.</summary>
    IReadOnlyList<PciFunction> EnumeratePci();

    /// <summary>Walks the function's capability list (bounds-checked).</summary>
    PciCapabilityList ReadPciCapabilities(PciFunction function);

    /// <summary>The interrupt-controller input the function's INTx pin arrives at (PLIC source, IOAPIC GSI), or null when it has none.</summary>
    uint? FindPciIntxLine(PciFunction function);

    /// <summary>Opens a virtio-pci transport on <paramref name="function"/> (legacy when true, modern when false, the modern one if offered when null).</summary>
    IVirtioTransport OpenPciTransport(PciFunction function, bool? legacy, VirtioPciInterruptMode mode);
}
