using System.Diagnostics.CodeAnalysis;

namespace VirtioNet.Qemu;

/// <summary>
/// A range of the x86 I/O port space as a register window (an I/O BAR, such as the legacy virtio-pci registers):
/// every access is one qtest <c>in</c>/<c>out</c> command at <see cref="PortBase"/> + offset, checked against the
/// window's bounds first. The port space has no 64-bit accesses: <see cref="Read64"/> and <see cref="Write64"/> are
/// two 32-bit accesses, low half first, as a 32-bit CPU would split them.
/// </summary>
public sealed class QtestPortWindow : IRegisterWindow
{
    /// <summary>The size of the x86 I/O port space (ports 0 to 0xFFFF).</summary>
    public const ulong PortSpaceSize = 0x1_0000;

    // The connection that performs each access.
    private readonly QtestClient _client;

    /// <summary>Creates a window of <paramref name="length"/> ports from <paramref name="portBase"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the window is empty or runs past port 0xFFFF.</exception>
    public QtestPortWindow(QtestClient client, ulong portBase, ulong length)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        if (portBase >= PortSpaceSize || length > PortSpaceSize - portBase)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"{length} ports from 0x{portBase:x} run past the end of the I/O port space (0xffff).");
        }

        _client = client;
        PortBase = (ushort)portBase;
        Length = length;
    }

    /// <summary>The port of offset 0.</summary>
    public ushort PortBase { get; }

    /// <inheritdoc />
    public ulong Length { get; }

    /// <inheritdoc />
    public byte Read8(ulong offset) => _client.InB(Port(offset, 1));

    /// <inheritdoc />
    public ushort Read16(ulong offset) => _client.InW(Port(offset, 2));

    /// <inheritdoc />
    public uint Read32(ulong offset) => _client.InL(Port(offset, 4));

    /// <inheritdoc />
    public ulong Read64(ulong offset)
    {
        ushort port = Port(offset, 8);
        uint low = _client.InL(port);
        return ((ulong)_client.InL((ushort)(port + 4)) << 32) | low;
    }

    /// <inheritdoc />
    public void Write8(ulong offset, byte value) => _client.OutB(Port(offset, 1), value);

    /// <inheritdoc />
    public void Write16(ulong offset, ushort value) => _client.OutW(Port(offset, 2), value);

    /// <inheritdoc />
    public void Write32(ulong offset, uint value) => _client.OutL(Port(offset, 4), value);

    /// <inheritdoc />
    public void Write64(ulong offset, ulong value)
    {
        ushort port = Port(offset, 8);
        _client.OutL(port, (uint)value);
        _client.OutL((ushort)(port + 4), (uint)(value >> 32));
    }

    /// <inheritdoc />
    public override string ToString() => $"qtest ports 0x{PortBase:x} +0x{Length:x}";

    private ushort Port(ulong offset, ulong size)
    {
        if (offset > Length || size > Length - offset)
        {
            ThrowOutside(offset, size);
        }

        return (ushort)(PortBase + offset);
    }

    [DoesNotReturn]
    private void ThrowOutside(ulong offset, ulong size) =>
        throw new ArgumentOutOfRangeException(
            nameof(offset),
            $"A {size}-byte access at offset 0x{offset:x} lies outside the {Length} ports at 0x{PortBase:x}.");
}
