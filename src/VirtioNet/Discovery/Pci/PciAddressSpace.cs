namespace VirtioNet.Discovery.Pci;

/// <summary>The PCI address spaces a BAR or a host bridge window belongs to (the space code of phys.hi, bits 25:24).</summary>
public enum PciAddressSpace
{
    /// <summary>Configuration space (00).</summary>
    Configuration = 0,

    /// <summary>I/O space (01).</summary>
    Io = 1,

    /// <summary>32-bit memory space (10).</summary>
    Memory32 = 2,

    /// <summary>64-bit memory space (11).</summary>
    Memory64 = 3,
}
