namespace VirtioNet.Discovery.Pci;

/// <summary>One entry of a host bridge's <c>ranges</c>: a PCI address range and where the CPU sees it.</summary>
/// <param name="Space">The PCI address space.</param>
/// <param name="Prefetchable">Whether the range is prefetchable (phys.hi bit 30).</param>
/// <param name="PciAddress">The first PCI bus address (what a BAR is programmed with).</param>
/// <param name="CpuAddress">The CPU physical address of <paramref name="PciAddress"/>.</param>
/// <param name="Size">The range's length in bytes.</param>
public sealed record PciWindow(PciAddressSpace Space, bool Prefetchable, ulong PciAddress, ulong CpuAddress, ulong Size)
{
    /// <summary>The CPU address of PCI bus address <paramref name="pciAddress"/>, which must lie in the window.</summary>
    public ulong ToCpuAddress(ulong pciAddress)
    {
        if (pciAddress < PciAddress || pciAddress - PciAddress >= Size)
        {
            throw new ArgumentOutOfRangeException(nameof(pciAddress), $"PCI address 0x{pciAddress:x} lies outside the window {this}.");
        }

        return CpuAddress + (pciAddress - PciAddress);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Space}{(Prefetchable ? " prefetchable" : "")} pci 0x{PciAddress:x} cpu 0x{CpuAddress:x} size 0x{Size:x}";
}
