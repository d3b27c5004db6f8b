using System.Diagnostics.CodeAnalysis;

namespace VirtioNet.Qemu;

/// <summary>
/// A device's register window on a QEMU machine: every access is one qtest command at
/// <see cref="PhysicalBase"/> + offset, checked against the window's bounds first so that a driver bug cannot
/// reach a neighbouring device. Values are in host order: qtest performs the access in the guest's byte order
/// (little-endian on riscv64), as a guest CPU's load or store would.
/// </summary>
public sealed class QtestRegisterWindow : IRegisterWindow
{
    // The connection that performs each access.
    private readonly QtestClient _client;

    /// <summary>Creates a window of <paramref name="length"/> bytes at guest-physical <paramref name="physicalBase"/>.</summary>
    public QtestRegisterWindow(QtestClient client, ulong physicalBase, ulong length)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        if (physicalBase + length < physicalBase)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"A window of {length} bytes at 0x{physicalBase:x} wraps around the address space.");
        }

        _client = client;
        PhysicalBase = physicalBase;
        Length = length;
    }

    /// <summary>The guest-physical address of offset 0.</summary>
    public ulong PhysicalBase { get; }

    /// <inheritdoc />
    public ulong Length { get; }

    /// <inheritdoc />
    public byte Read8(ulong offset) => _client.ReadB(Address(offset, 1));

    /// <inheritdoc />
    public ushort Read16(ulong offset) => _client.ReadW(Address(offset, 2));

    /// <inheritdoc />
    public uint Read32(ulong offset) => _client.ReadL(Address(offset, 4));

    /// <inheritdoc />
    public ulong Read64(ulong offset) => _client.ReadQ(Address(offset, 8));

    /// <inheritdoc />
    public void Write8(ulong offset, byte value) => _client.WriteB(Address(offset, 1), value);

    /// <inheritdoc />
    public void Write16(ulong offset, ushort value) => _client.WriteW(Address(offset, 2), value);

    /// <inheritdoc />
    public void Write32(ulong offset, uint value) => _client.WriteL(Address(offset, 4), value);

    /// <inheritdoc />
    public void Write64(ulong offset, ulong value) => _client.WriteQ(Address(offset, 8), value);

    /// <inheritdoc />
    public override string ToString() => $"qtest window 0x{PhysicalBase:x} +0x{Length:x}";

    private ulong Address(ulong offset, ulong size)
    {
        if (offset > Length || size > Length - offset)
        {
            ThrowOutside(offset, size);
        }

        return PhysicalBase + offset;
    }

    [DoesNotReturn]
    private void ThrowOutside(ulong offset, ulong size) =>
        throw new ArgumentOutOfRangeException(
            nameof(offset),
            $"A {size}-byte access at offset 0x{offset:x} lies outside the {Length}-byte window at 0x{PhysicalBase:x}.");
}
