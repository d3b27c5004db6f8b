using System.Buffers.Binary;
using System.Text;

namespace VirtioNet.Tests.Discovery;

/// <summary>
/// A small flattened device tree writer for tests: builds version 17 blobs laid out as dtc does (header, memory
/// reservation block, structure block, strings block), and lets a test emit raw tokens to make malformed ones.
/// </summary>
internal sealed class FdtBuilder
{
    public const int HeaderSize = 0x28;
    public const int TotalSizeOffset = 0x04;
    public const int OffDtStructOffset = 0x08;
    public const int OffDtStringsOffset = 0x0C;
    public const int OffMemRsvmapOffset = 0x10;
    public const int VersionOffset = 0x14;
    public const int LastCompVersionOffset = 0x18;
    public const int SizeDtStringsOffset = 0x20;
    public const int SizeDtStructOffset = 0x24;

    public const uint BeginNodeToken = 1;
    public const uint EndNodeToken = 2;
    public const uint PropToken = 3;
    public const uint NopToken = 4;
    public const uint EndToken = 9;

    private readonly List<byte> _structure = [];
    private readonly List<byte> _strings = [];
    private readonly Dictionary<string, int> _nameOffsets = new(StringComparer.Ordinal);
    private readonly List<(ulong Address, ulong Size)> _reservations = [];

    public FdtBuilder BeginNode(string name)
    {
        Word(BeginNodeToken);
        _structure.AddRange(Encoding.UTF8.GetBytes(name));
        _structure.Add(0);
        Pad();
        return this;
    }

    public FdtBuilder EndNode() => Word(EndNodeToken);

    public FdtBuilder Nop() => Word(NopToken);

    public FdtBuilder End() => Word(EndToken);

    /// <summary>Appends a raw big-endian word to the structure block.</summary>
    public FdtBuilder Word(uint word)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, word);
        _structure.AddRange(bytes.ToArray());
        return this;
    }

    public FdtBuilder Property(string name, byte[] value) => PropertyAt(NameOffset(name), value);

    /// <summary>A property whose name offset is given as is, e.g. one past the strings block.</summary>
    public FdtBuilder PropertyAt(uint nameOffset, byte[] value)
    {
        Word(PropToken);
        Word((uint)value.Length);
        Word(nameOffset);
        _structure.AddRange(value);
        Pad();
        return this;
    }

    public FdtBuilder Empty(string name) => Property(name, []);

    public FdtBuilder String(string name, string value) => StringList(name, value);

    public FdtBuilder StringList(string name, params string[] values) =>
        Property(name, values.SelectMany(v => Encoding.UTF8.GetBytes(v).Append((byte)0)).ToArray());

    public FdtBuilder Cells(string name, params uint[] cells)
    {
        var bytes = new byte[cells.Length * 4];
        for (int i = 0; i < cells.Length; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(i * 4), cells[i]);
        }

        return Property(name, bytes);
    }

    public FdtBuilder Reserve(ulong address, ulong size)
    {
        _reservations.Add((address, size));
        return this;
    }

    /// <summary>Appends raw bytes to the strings block (e.g. a name without its terminator).</summary>
    public uint RawString(byte[] bytes)
    {
        int offset = _strings.Count;
        _strings.AddRange(bytes);
        return (uint)offset;
    }

    /// <summary>Lays out the blob. FDT_END is appended unless the test wrote the structure block's end itself.</summary>
    public byte[] Build(bool appendEnd = true)
    {
        if (appendEnd)
        {
            End();
        }

        int rsvmapOffset = HeaderSize;
        int structOffset = rsvmapOffset + ((_reservations.Count + 1) * 16);
        int stringsOffset = structOffset + _structure.Count;
        int totalSize = stringsOffset + _strings.Count;
        var blob = new byte[totalSize];
        SetField(blob, 0x00, 0xD00DFEED);
        SetField(blob, TotalSizeOffset, (uint)totalSize);
        SetField(blob, OffDtStructOffset, (uint)structOffset);
        SetField(blob, OffDtStringsOffset, (uint)stringsOffset);
        SetField(blob, OffMemRsvmapOffset, (uint)rsvmapOffset);
        SetField(blob, VersionOffset, 17);
        SetField(blob, LastCompVersionOffset, 16);
        SetField(blob, SizeDtStringsOffset, (uint)_strings.Count);
        SetField(blob, SizeDtStructOffset, (uint)_structure.Count);
        for (int i = 0; i < _reservations.Count; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(blob.AsSpan(rsvmapOffset + (i * 16)), _reservations[i].Address);
            BinaryPrimitives.WriteUInt64BigEndian(blob.AsSpan(rsvmapOffset + (i * 16) + 8), _reservations[i].Size);
        }

        _structure.CopyTo(blob, structOffset);
        _strings.CopyTo(blob, stringsOffset);
        return blob;
    }

    public static uint GetField(byte[] blob, int offset) => BinaryPrimitives.ReadUInt32BigEndian(blob.AsSpan(offset));

    public static void SetField(byte[] blob, int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(blob.AsSpan(offset), value);

    /// <summary>
    /// A small tree shaped like QEMU's riscv64 virt: a PLIC with a phandle, and a simple-bus holding two
    /// virtio-mmio nodes (given out of address order) that name it as their interrupt parent.
    /// </summary>
    public static FdtBuilder VirtLike()
    {
        return new FdtBuilder()
            .BeginNode(string.Empty)
                .Cells("#address-cells", 2)
                .Cells("#size-cells", 2)
                .String("compatible", "riscv-virtio")
                .BeginNode("soc")
                    .Cells("#address-cells", 2)
                    .Cells("#size-cells", 2)
                    .String("compatible", "simple-bus")
                    .Empty("ranges")
                    .BeginNode("virtio_mmio@10002000")
                        .Cells("interrupts", 2)
                        .Cells("interrupt-parent", 3)
                        .Cells("reg", 0, 0x10002000, 0, 0x1000)
                        .String("compatible", "virtio,mmio")
                    .EndNode()
                    .BeginNode("virtio_mmio@10001000")
                        .Cells("interrupts", 1)
                        .Cells("interrupt-parent", 3)
                        .Cells("reg", 0, 0x10001000, 0, 0x1000)
                        .String("compatible", "virtio,mmio")
                    .EndNode()
                    .BeginNode("plic@c000000")
                        .Cells("phandle", 3)
                        .Cells("riscv,ndev", 0x60)
                        .Cells("reg", 0, 0xc000000, 0, 0x600000)
                        .Empty("interrupt-controller")
                        .StringList("compatible", "sifive,plic-1.0.0", "riscv,plic0")
                        .Cells("#address-cells", 0)
                        .Cells("#interrupt-cells", 1)
                    .EndNode()
                .EndNode()
            .EndNode();
    }

    private FdtBuilder Pad()
    {
        while (_structure.Count % 4 != 0)
        {
            _structure.Add(0);
        }

        return this;
    }

    private uint NameOffset(string name)
    {
        if (!_nameOffsets.TryGetValue(name, out int offset))
        {
            offset = _strings.Count;
            _strings.AddRange(Encoding.UTF8.GetBytes(name));
            _strings.Add(0);
            _nameOffsets[name] = offset;
        }

        return (uint)offset;
    }
}
