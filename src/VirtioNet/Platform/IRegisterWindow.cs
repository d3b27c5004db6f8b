namespace VirtioNet.Platform;

/// <summary>
/// A device's register window: an MMIO region, a PCI BAR or a PCI configuration space.
/// Offsets are relative to the start of the window. Values are returned in host order; the window
/// performs whatever byte swapping the bus needs (virtio registers are little-endian).
/// </summary>
/// <remarks>
/// On real hardware an implementation is a volatile pointer access; on a QEMU machine driven over qtest
/// each access is a qtest command. Every access is a full device access: implementations must not
/// cache, merge or reorder them.
/// </remarks>
public interface IRegisterWindow
{
    /// <summary>The size of the window in bytes. Accesses must lie entirely inside it.</summary>
    ulong Length { get; }

    /// <summary>Reads an 8-bit register.</summary>
    byte Read8(ulong offset);

    /// <summary>Reads a 16-bit register.</summary>
    ushort Read16(ulong offset);

    /// <summary>Reads a 32-bit register.</summary>
    uint Read32(ulong offset);

    /// <summary>Reads a 64-bit register.</summary>
    ulong Read64(ulong offset);

    /// <summary>Writes an 8-bit register.</summary>
    void Write8(ulong offset, byte value);

    /// <summary>Writes a 16-bit register.</summary>
    void Write16(ulong offset, ushort value);

    /// <summary>Writes a 32-bit register.</summary>
    void Write32(ulong offset, uint value);

    /// <summary>Writes a 64-bit register.</summary>
    void Write64(ulong offset, ulong value);
}
