using System.Buffers.Binary;
using VirtioNet.Platform;

namespace VirtioNet.Tests.Transports;

/// <summary>
/// A register window over a byte array (configuration space or a BAR) that records every access and fails the test
/// on one outside its bounds, so a test can show that nothing was read or written out of range.
/// </summary>
internal sealed class PciTestWindow(int length) : IRegisterWindow
{
    public byte[] Bytes { get; } = new byte[length];

    public ulong Length => (ulong)Bytes.Length;

    /// <summary>One past the highest byte any access touched.</summary>
    public ulong HighestAccessEnd { get; private set; }

    public List<(ulong Offset, int Size, ulong Value)> Writes { get; } = [];

    public void Set8(int offset, byte value) => Bytes[offset] = value;

    public void Set16(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Bytes.AsSpan(offset), value);

    public void Set32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Bytes.AsSpan(offset), value);

    public byte Read8(ulong offset) => Bytes[Check(offset, 1)];

    public ushort Read16(ulong offset) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes.AsSpan(Check(offset, 2)));

    public uint Read32(ulong offset) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes.AsSpan(Check(offset, 4)));

    public ulong Read64(ulong offset) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes.AsSpan(Check(offset, 8)));

    public void Write8(ulong offset, byte value)
    {
        Bytes[Check(offset, 1)] = value;
        Writes.Add((offset, 1, value));
    }

    public void Write16(ulong offset, ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(Bytes.AsSpan(Check(offset, 2)), value);
        Writes.Add((offset, 2, value));
    }

    public void Write32(ulong offset, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(Bytes.AsSpan(Check(offset, 4)), value);
        Writes.Add((offset, 4, value));
    }

    public void Write64(ulong offset, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(Bytes.AsSpan(Check(offset, 8)), value);
        Writes.Add((offset, 8, value));
    }

    private int Check(ulong offset, int size)
    {
        if (offset + (ulong)size > Length)
        {
            throw new Xunit.Sdk.XunitException($"out-of-bounds {size}-byte access at 0x{offset:x} of a 0x{Length:x}-byte window");
        }

        HighestAccessEnd = Math.Max(HighestAccessEnd, offset + (ulong)size);
        return (int)offset;
    }
}
