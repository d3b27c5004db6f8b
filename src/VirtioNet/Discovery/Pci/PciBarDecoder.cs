namespace VirtioNet.Discovery.Pci;

/// <summary>
/// Decodes what a BAR reads back after all ones were written to it: its kind and size. Pure arithmetic.
/// Ref: PCI Local Bus 3.0 §6.2.5.1 (Address Maps).
/// </summary>
public static class PciBarDecoder
{
    /// <summary>
    /// Decodes BAR <paramref name="index"/> from <paramref name="original"/> (its value before sizing, which carries the
    /// read-only type bits), <paramref name="sizedLow"/> (read back after writing 0xffffffff) and, for a 64-bit BAR,
    /// <paramref name="sizedHigh"/> (the next BAR read back after writing 0xffffffff). Returns null for an
    /// unimplemented BAR (reads back 0).
    /// </summary>
    public static PciBar? Decode(int index, uint original, uint sizedLow, uint sizedHigh)
    {
        if ((original & PciHeaderRegisters.BarIoSpace) != 0)
        {
            uint ioMask = sizedLow & ~3u;
            if (ioMask == 0)
            {
                return null;
            }

            // A device that decodes 16 I/O address bits reads the upper half back as 0: only the implemented bits count.
            if ((ioMask & 0xffff_0000) == 0)
            {
                ioMask |= 0xffff_0000;
            }

            return new PciBar(index, PciAddressSpace.Io, false, LowestSetBit(ioMask));
        }

        bool is64 = (original & PciHeaderRegisters.BarMemoryTypeMask) == PciHeaderRegisters.BarMemoryType64;
        bool prefetchable = (original & PciHeaderRegisters.BarPrefetchable) != 0;
        ulong mask = sizedLow & ~0xfu;
        if (is64)
        {
            mask |= (ulong)sizedHigh << 32;
        }

        return mask == 0 ? null : new PciBar(index, is64 ? PciAddressSpace.Memory64 : PciAddressSpace.Memory32, prefetchable, LowestSetBit(mask));
    }

    // The size is the weight of the lowest writable address bit; bits above it are all writable in a conforming BAR.
    private static ulong LowestSetBit(ulong mask) => mask & (~mask + 1);
}
