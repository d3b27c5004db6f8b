namespace VirtioNet.Discovery.Pci;

/// <summary>One entry of a host bridge's <c>interrupt-map</c>: which controller input a (slot, pin) pair is wired to.</summary>
/// <param name="UnitAddressHigh">The child unit address's phys.hi cell (bus, device, function), before masking.</param>
/// <param name="Pin">The INTx pin, 1 (INTA#) to 4 (INTD#).</param>
/// <param name="Controller">The interrupt controller node the entry names.</param>
/// <param name="ParentSpecifier">The interrupt specifier in the controller's terms (for the PLIC: the source number).</param>
public sealed record PciInterruptMapEntry(uint UnitAddressHigh, uint Pin, DeviceTreeNode Controller, IReadOnlyList<uint> ParentSpecifier);
