using System.Diagnostics.CodeAnalysis;

namespace VirtioNet.Qemu;

/// <summary>
/// One function's 256-byte configuration space through PCI configuration mechanism #1: write CONFIG_ADDRESS (port
/// 0xCF8), then access CONFIG_DATA (0xCFC + offset bits 1:0). The way into the chipset before ECAM is enabled; the
/// board uses it to program the MCH's PCIEXBAR and the LPC's PIRQ routing. Ref: PCI Local Bus 3.0 §3.2.2.3.2.
/// </summary>
/// <remarks>
/// An access is two port commands, so concurrent users of the port pair would corrupt each other's addresses: every
/// window of one machine shares <c>sync</c>. An access may not cross a dword boundary (CONFIG_DATA is one dword), and
/// a 64-bit access is two dword accesses, low first.
/// </remarks>
public sealed class Q35ConfigPortWindow(QtestClient client, PciFunctionAddress function, Lock sync) : IRegisterWindow
{
    /// <summary>The configuration space mechanism #1 reaches: the first 256 bytes.</summary>
    public const ulong ConfigSpaceSize = 0x100;

    // The connection that performs each access.
    private readonly QtestClient _client = client ?? throw new ArgumentNullException(nameof(client));

    // Serializes the CONFIG_ADDRESS/CONFIG_DATA pairs of every window on the machine.
    private readonly Lock _sync = sync ?? throw new ArgumentNullException(nameof(sync));

    /// <summary>The function whose configuration space this is.</summary>
    public PciFunctionAddress Function { get; } = function;

    /// <inheritdoc />
    public ulong Length => ConfigSpaceSize;

    /// <inheritdoc />
    public byte Read8(ulong offset)
    {
        lock (_sync)
        {
            return _client.InB(Select(offset, 1));
        }
    }

    /// <inheritdoc />
    public ushort Read16(ulong offset)
    {
        lock (_sync)
        {
            return _client.InW(Select(offset, 2));
        }
    }

    /// <inheritdoc />
    public uint Read32(ulong offset)
    {
        lock (_sync)
        {
            return _client.InL(Select(offset, 4));
        }
    }

    /// <inheritdoc />
    public ulong Read64(ulong offset)
    {
        CheckAligned64(offset);
        uint low = Read32(offset);
        return ((ulong)Read32(offset + 4) << 32) | low;
    }

    /// <inheritdoc />
    public void Write8(ulong offset, byte value)
    {
        lock (_sync)
        {
            _client.OutB(Select(offset, 1), value);
        }
    }

    /// <inheritdoc />
    public void Write16(ulong offset, ushort value)
    {
        lock (_sync)
        {
            _client.OutW(Select(offset, 2), value);
        }
    }

    /// <inheritdoc />
    public void Write32(ulong offset, uint value)
    {
        lock (_sync)
        {
            _client.OutL(Select(offset, 4), value);
        }
    }

    /// <inheritdoc />
    public void Write64(ulong offset, ulong value)
    {
        CheckAligned64(offset);
        Write32(offset, (uint)value);
        Write32(offset + 4, (uint)(value >> 32));
    }

    /// <inheritdoc />
    public override string ToString() => $"{Function} config space via 0xcf8/0xcfc";

    // Points CONFIG_ADDRESS at the dword holding the access and returns the CONFIG_DATA port of its first byte.
    private ushort Select(ulong offset, int size)
    {
        if (offset >= ConfigSpaceSize || (int)(offset & 3) + size > 4)
        {
            ThrowBadAccess(offset, size);
        }

        _client.OutL(Q35Chipset.ConfigAddressPort, Q35Chipset.ConfigAddress(Function, (int)offset));
        return (ushort)(Q35Chipset.ConfigDataPort + (int)(offset & 3));
    }

    private static void CheckAligned64(ulong offset)
    {
        if ((offset & 7) != 0 || offset > ConfigSpaceSize - 8)
        {
            ThrowBadAccess(offset, 8);
        }
    }

    [DoesNotReturn]
    private static void ThrowBadAccess(ulong offset, int size) =>
        throw new ArgumentOutOfRangeException(
            nameof(offset),
            $"A {size}-byte configuration access at 0x{offset:x} crosses a dword or lies outside the {ConfigSpaceSize} bytes mechanism #1 reaches.");
}
