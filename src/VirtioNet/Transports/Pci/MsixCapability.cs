namespace VirtioNet.Transports.Pci;

/// <summary>A function's MSI-X capability. Ref: PCI Local Bus 3.0 §6.8.2.</summary>
/// <param name="ConfigOffset">Where the capability sits in configuration space.</param>
/// <param name="TableSize">The number of table entries (Message Control bits 10:0, plus one).</param>
/// <param name="TableBar">The BAR holding the table (Table BIR).</param>
/// <param name="TableOffset">The table's offset inside that BAR.</param>
/// <param name="PendingBitArrayBar">The BAR holding the Pending Bit Array.</param>
/// <param name="PendingBitArrayOffset">The PBA's offset inside that BAR.</param>
public sealed record MsixCapability(int ConfigOffset, int TableSize, byte TableBar, uint TableOffset, byte PendingBitArrayBar, uint PendingBitArrayOffset)
{
    /// <summary>The table's length in bytes.</summary>
    public uint TableLength => (uint)TableSize * PciConfigRegisters.MsixEntrySize;

    /// <inheritdoc />
    public override string ToString() => $"MSI-X {TableSize} vectors, table bar{TableBar}+0x{TableOffset:x}, PBA bar{PendingBitArrayBar}+0x{PendingBitArrayOffset:x}";
}
