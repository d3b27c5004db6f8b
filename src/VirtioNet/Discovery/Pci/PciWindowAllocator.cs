namespace VirtioNet.Discovery.Pci;

/// <summary>
/// Hands out naturally aligned ranges of one host bridge window, lowest first. Pure arithmetic; the caller places the
/// largest BARs first so alignment wastes least. Ref: PCI Local Bus 3.0 §6.2.5.1 (a BAR is aligned to its size).
/// </summary>
public sealed class PciWindowAllocator
{
    // The next free PCI address.
    private ulong _next;

    /// <summary>Allocates from <paramref name="window"/>, leaving PCI addresses below <paramref name="reserveBelow"/> unused.</summary>
    public PciWindowAllocator(PciWindow window, ulong reserveBelow = 0)
    {
        ArgumentNullException.ThrowIfNull(window);
        Window = window;
        _next = Math.Max(window.PciAddress, reserveBelow);
    }

    /// <summary>The window allocated from.</summary>
    public PciWindow Window { get; }

    /// <summary>
    /// Finds room for <paramref name="size"/> bytes (a power of two) aligned to its size, ending at or below
    /// <paramref name="limit"/> (2^32 for a 32-bit BAR). Returns false, changing nothing, when the window has no room.
    /// </summary>
    public bool TryAllocate(ulong size, out ulong pciAddress, ulong limit = ulong.MaxValue)
    {
        pciAddress = 0;
        if (size == 0 || (size & (size - 1)) != 0)
        {
            return false;
        }

        ulong start = (_next + size - 1) & ~(size - 1);
        ulong windowEnd = Window.PciAddress + Window.Size;
        if (start < _next || start + size < start || start + size > windowEnd || start + size > limit)
        {
            return false;
        }

        _next = start + size;
        pciAddress = start;
        return true;
    }
}
