using VirtioNet.Platform;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// A bounds-checked slice of a larger register window: one virtio structure inside a BAR. Accesses outside the slice
/// fail here, before they reach the BAR (and so before they could reach another structure or device).
/// </summary>
internal sealed class RegisterSubWindow : IRegisterWindow
{
    private readonly IRegisterWindow _parent;
    private readonly ulong _offset;

    public RegisterSubWindow(IRegisterWindow parent, ulong offset, ulong length)
    {
        if (offset > parent.Length || length > parent.Length - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"A slice [0x{offset:x}, +0x{length:x}) lies outside a window of 0x{parent.Length:x} bytes.");
        }

        _parent = parent;
        _offset = offset;
        Length = length;
    }

    public ulong Length { get; }

    public byte Read8(ulong offset) => _parent.Read8(At(offset, 1));

    public ushort Read16(ulong offset) => _parent.Read16(At(offset, 2));

    public uint Read32(ulong offset) => _parent.Read32(At(offset, 4));

    public ulong Read64(ulong offset) => _parent.Read64(At(offset, 8));

    public void Write8(ulong offset, byte value) => _parent.Write8(At(offset, 1), value);

    public void Write16(ulong offset, ushort value) => _parent.Write16(At(offset, 2), value);

    public void Write32(ulong offset, uint value) => _parent.Write32(At(offset, 4), value);

    public void Write64(ulong offset, ulong value) => _parent.Write64(At(offset, 8), value);

    private ulong At(ulong offset, ulong size)
    {
        if (offset > Length || size > Length - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"A {size}-byte access at 0x{offset:x} lies outside a structure of 0x{Length:x} bytes.");
        }

        return _offset + offset;
    }
}
