namespace VirtioNet.Transports.Pci;

/// <summary>One entry of a PCI function's capability list.</summary>
/// <param name="Id">The capability ID (0x09 vendor-specific, 0x11 MSI-X, 0x10 PCI Express ...).</param>
/// <param name="Offset">Where the capability starts in configuration space.</param>
public readonly record struct PciCapability(byte Id, int Offset)
{
    /// <summary>A short name for listings: "MSI-X", "vendor", "PCIe", or the hexadecimal id.</summary>
    public string Name => Id switch
    {
        0x01 => "power-management",
        0x05 => "MSI",
        0x09 => "vendor",
        0x10 => "PCIe",
        0x11 => "MSI-X",
        _ => $"0x{Id:x2}",
    };
}
