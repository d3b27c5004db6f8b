namespace VirtioNet.Discovery.Pci;

/// <summary>One Base Address Register of a function, sized and (once assigned) placed.</summary>
/// <param name="Index">The BAR number, 0-5 (a 64-bit BAR uses this and the next).</param>
/// <param name="Space">I/O, 32-bit memory or 64-bit memory.</param>
/// <param name="Prefetchable">Whether the memory is prefetchable.</param>
/// <param name="Size">The decoded size in bytes, a power of two.</param>
public sealed record PciBar(int Index, PciAddressSpace Space, bool Prefetchable, ulong Size)
{
    /// <summary>The PCI bus address the BAR was programmed with; 0 until assigned.</summary>
    public ulong PciAddress { get; init; }

    /// <summary>Where the CPU reaches the BAR (through the host bridge window); 0 until assigned.</summary>
    public ulong CpuAddress { get; init; }

    /// <summary>True once the BAR has been placed in a window and programmed.</summary>
    public bool IsAssigned => CpuAddress != 0;

    /// <summary>True for a 64-bit memory BAR.</summary>
    public bool Is64Bit => Space == PciAddressSpace.Memory64;

    /// <inheritdoc />
    public override string ToString()
    {
        string kind = Space switch
        {
            PciAddressSpace.Io => "io",
            PciAddressSpace.Memory64 => Prefetchable ? "mem64 pref" : "mem64",
            _ => Prefetchable ? "mem32 pref" : "mem32",
        };
        return IsAssigned
            ? $"BAR{Index} {kind} 0x{Size:x} @ pci 0x{PciAddress:x} (cpu 0x{CpuAddress:x})"
            : $"BAR{Index} {kind} 0x{Size:x} unassigned";
    }
}
