using System.Buffers.Binary;
using System.Text;

namespace VirtioNet.Discovery;

/// <summary>The parser: header, memory reservation block, structure block and strings block. Ref: devicetree v0.4 §5.</summary>
public sealed partial class FlattenedDeviceTree
{
    // Structure block tokens, big-endian 32-bit words aligned to 4 bytes. Ref: devicetree v0.4 §5.4.1.
    private const uint FdtBeginNode = 0x1;
    private const uint FdtEndNode = 0x2;
    private const uint FdtProp = 0x3;
    private const uint FdtNop = 0x4;
    private const uint FdtEnd = 0x9;

    // Header field offsets. Ref: devicetree v0.4 §5.2.
    private const int MagicOffset = 0x00;
    private const int TotalSizeOffset = 0x04;
    private const int OffDtStructOffset = 0x08;
    private const int OffDtStringsOffset = 0x0C;
    private const int OffMemRsvmapOffset = 0x10;
    private const int VersionOffset = 0x14;
    private const int LastCompVersionOffset = 0x18;
    private const int BootCpuidPhysOffset = 0x1C;
    private const int SizeDtStringsOffset = 0x20;
    private const int SizeDtStructOffset = 0x24;

    // Version 16 headers end before size_dt_struct, which version 17 added.
    private const int Version16HeaderSize = 0x24;
    private const int Version17HeaderSize = 0x28;

    private const int ReservationEntrySize = 16;

    /// <summary>
    /// Parses a flattened device tree. <paramref name="blob"/> may be longer than the tree (a window of guest memory);
    /// only the header's <c>totalsize</c> bytes are read.
    /// </summary>
    /// <exception cref="Core.VirtioException">
    /// With <see cref="Core.VirtioErrorReason.MalformedDescription"/>: bad magic, an unsupported version, truncation,
    /// an offset or length outside the blob, an unterminated name, a property name offset outside the strings block,
    /// unbalanced or too deep nesting, too many nodes or properties, duplicate names or phandles, or data after
    /// FDT_END. The message says what and at which offset.
    /// </exception>
    public static FlattenedDeviceTree Parse(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < sizeof(uint))
        {
            DeviceTreeErrors.Throw($"the blob is {blob.Length} bytes, too short to hold the magic number.");
        }

        uint magic = ReadUInt32(blob, MagicOffset);
        if (magic != Magic)
        {
            DeviceTreeErrors.Throw($"bad magic 0x{magic:x8} at offset 0x0 (expected 0x{Magic:x8}).");
        }

        if (blob.Length < Version16HeaderSize)
        {
            DeviceTreeErrors.Throw($"the blob is {blob.Length} bytes, shorter than the {Version16HeaderSize}-byte header.");
        }

        uint version = ReadUInt32(blob, VersionOffset);
        uint lastCompVersion = ReadUInt32(blob, LastCompVersionOffset);
        if (version < OldestVersion)
        {
            DeviceTreeErrors.Throw($"version {version} at offset 0x{VersionOffset:x} is older than {OldestVersion}, the oldest this parser reads.");
        }

        if (lastCompVersion > NewestVersion)
        {
            DeviceTreeErrors.Throw($"last_comp_version {lastCompVersion} at offset 0x{LastCompVersionOffset:x} is newer than {NewestVersion}: the blob is not compatible with this parser.");
        }

        if (lastCompVersion > version)
        {
            DeviceTreeErrors.Throw($"last_comp_version {lastCompVersion} at offset 0x{LastCompVersionOffset:x} is newer than the version {version} itself.");
        }

        int headerSize = version >= 17 ? Version17HeaderSize : Version16HeaderSize;
        if (blob.Length < headerSize)
        {
            DeviceTreeErrors.Throw($"the blob is {blob.Length} bytes, shorter than the {headerSize}-byte version {version} header.");
        }

        uint totalSize = ReadUInt32(blob, TotalSizeOffset);
        if (totalSize < headerSize)
        {
            DeviceTreeErrors.Throw($"totalsize 0x{totalSize:x} at offset 0x{TotalSizeOffset:x} is smaller than the {headerSize}-byte header.");
        }

        if (totalSize > (uint)blob.Length)
        {
            DeviceTreeErrors.Throw($"totalsize 0x{totalSize:x} at offset 0x{TotalSizeOffset:x} exceeds the 0x{blob.Length:x} bytes available: the blob is truncated.");
        }

        uint offStruct = ReadUInt32(blob, OffDtStructOffset);
        uint offStrings = ReadUInt32(blob, OffDtStringsOffset);
        uint offRsvmap = ReadUInt32(blob, OffMemRsvmapOffset);
        uint sizeStrings = ReadUInt32(blob, SizeDtStringsOffset);
        CheckBlock("structure block", offStruct, OffDtStructOffset, headerSize, totalSize);
        uint sizeStruct = version >= 17 ? ReadUInt32(blob, SizeDtStructOffset) : totalSize - offStruct;
        CheckBlockSize("structure block", offStruct, sizeStruct, version >= 17 ? SizeDtStructOffset : TotalSizeOffset, totalSize);
        CheckBlock("strings block", offStrings, OffDtStringsOffset, headerSize, totalSize, allowAtEnd: true);
        CheckBlockSize("strings block", offStrings, sizeStrings, SizeDtStringsOffset, totalSize);
        CheckBlock("memory reservation block", offRsvmap, OffMemRsvmapOffset, headerSize, totalSize);

        // §5.6: the reservation block is 8-byte aligned and the structure block 4-byte aligned.
        if (offRsvmap % 8 != 0)
        {
            DeviceTreeErrors.Throw($"off_mem_rsvmap 0x{offRsvmap:x} at offset 0x{OffMemRsvmapOffset:x} is not 8-byte aligned.");
        }

        if (offStruct % 4 != 0)
        {
            DeviceTreeErrors.Throw($"off_dt_struct 0x{offStruct:x} at offset 0x{OffDtStructOffset:x} is not 4-byte aligned.");
        }

        // From here on only the copy is read; every index below is an int within [0, totalSize].
        byte[] data = blob[..(int)totalSize].ToArray();
        var tree = new FlattenedDeviceTree(version, lastCompVersion, ReadUInt32(blob, BootCpuidPhysOffset), totalSize);
        tree.ReadReservations(data, (int)offRsvmap);
        tree.ReadStructure(data, (int)offStruct, (int)sizeStruct, (int)offStrings, (int)sizeStrings, exactSize: version >= 17);
        return tree;
    }

    /// <summary>Checks that a block starts after the header and inside the blob.</summary>
    private static void CheckBlock(string block, uint offset, int fieldOffset, int headerSize, uint totalSize, bool allowAtEnd = false)
    {
        if (offset < headerSize || offset > totalSize || (offset == totalSize && !allowAtEnd))
        {
            DeviceTreeErrors.Throw($"the {block} offset 0x{offset:x} at header offset 0x{fieldOffset:x} lies outside 0x{headerSize:x}..0x{totalSize:x} (after the header, within totalsize).");
        }
    }

    /// <summary>Checks that a block of <paramref name="size"/> bytes from <paramref name="offset"/> ends within the blob.</summary>
    private static void CheckBlockSize(string block, uint offset, uint size, int fieldOffset, uint totalSize)
    {
        if ((ulong)offset + size > totalSize)
        {
            DeviceTreeErrors.Throw($"the {block} at 0x{offset:x} with size 0x{size:x} (header offset 0x{fieldOffset:x}) ends past totalsize 0x{totalSize:x}.");
        }
    }

    /// <summary>Reads the memory reservation entries up to the terminating all-zero entry. Ref: devicetree v0.4 §5.3.</summary>
    private void ReadReservations(byte[] data, int offset)
    {
        for (int position = offset; ; position += ReservationEntrySize)
        {
            if (data.Length - position < ReservationEntrySize)
            {
                DeviceTreeErrors.Throw($"the memory reservation entry at offset 0x{position:x} runs past totalsize 0x{data.Length:x} (no terminating entry).");
            }

            ulong address = BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(position, sizeof(ulong)));
            ulong size = BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(position + sizeof(ulong), sizeof(ulong)));
            if (address == 0 && size == 0)
            {
                return;
            }

            if (_reservations.Count == MaxMemoryReservations)
            {
                DeviceTreeErrors.Throw($"more than {MaxMemoryReservations} memory reservation entries (at offset 0x{position:x}).");
            }

            if (size != 0 && address > ulong.MaxValue - (size - 1))
            {
                DeviceTreeErrors.Throw($"the memory reservation at offset 0x{position:x} (0x{address:x}, size 0x{size:x}) wraps past the end of the address space.");
            }

            _reservations.Add(new DeviceTreeMemoryReservation(address, size));
        }
    }

    /// <summary>
    /// Walks the structure block token by token, building the nodes. Every read is bounds-checked against the block;
    /// the grammar of §5.4.2 is enforced: NOPs anywhere, one root, each node's properties before its children,
    /// balanced FDT_BEGIN_NODE/FDT_END_NODE, and FDT_END as the block's last word. Version 16 headers do not give the
    /// block's size (<paramref name="exactSize"/> false): the block then runs to totalsize and may be followed by others.
    /// </summary>
    private void ReadStructure(byte[] data, int offset, int size, int stringsOffset, int stringsSize, bool exactSize)
    {
        int end = offset + size;
        int position = offset;
        int propertyCount = 0;
        DeviceTreeNode? current = null;
        bool rootClosed = false;
        var names = new Dictionary<int, string>();

        // Sibling names seen so far: a set rather than a scan of the parent's children, which a blob of many
        // siblings would turn quadratic.
        var siblingNames = new HashSet<(DeviceTreeNode Parent, string Name)>();
        ReadOnlySpan<byte> strings = data.AsSpan(stringsOffset, stringsSize);

        while (true)
        {
            int tokenOffset = position;
            if (end - position < sizeof(uint))
            {
                DeviceTreeErrors.Throw($"the structure block ends at offset 0x{end:x} without FDT_END (next token expected at 0x{tokenOffset:x}).");
            }

            uint token = ReadUInt32(data, position);
            position += sizeof(uint);
            switch (token)
            {
                case FdtBeginNode:
                    {
                        if (rootClosed)
                        {
                            DeviceTreeErrors.Throw($"a second root node at offset 0x{tokenOffset:x}.");
                        }

                        int depth = current is null ? 0 : current.Depth + 1;
                        if (depth > MaxDepth)
                        {
                            DeviceTreeErrors.Throw($"node at offset 0x{tokenOffset:x} nests deeper than {MaxDepth} levels.");
                        }

                        int nameLength = data.AsSpan(position, end - position).IndexOf((byte)0);
                        if (nameLength < 0)
                        {
                            DeviceTreeErrors.Throw($"the node name at offset 0x{position:x} is not terminated within the structure block.");
                        }

                        if (nameLength > MaxNameLength)
                        {
                            DeviceTreeErrors.Throw($"the node name at offset 0x{position:x} is {nameLength} bytes, longer than {MaxNameLength}.");
                        }

                        string name = Encoding.UTF8.GetString(data, position, nameLength);
                        position = AlignUp(position + nameLength + 1);
                        if (current is null)
                        {
                            // §2.2.1 and §5.4.1: the root node's name is empty.
                            if (nameLength != 0)
                            {
                                DeviceTreeErrors.Throw($"the root node at offset 0x{tokenOffset:x} has the name '{name}'; the root's name must be empty.");
                            }
                        }
                        else
                        {
                            if (nameLength == 0 || name.Contains('/'))
                            {
                                DeviceTreeErrors.Throw($"the node at offset 0x{tokenOffset:x} under {current.Path} has the invalid name '{name}' (empty or containing '/').");
                            }

                            if (!siblingNames.Add((current, name)))
                            {
                                DeviceTreeErrors.Throw($"the node at offset 0x{tokenOffset:x} duplicates the name {(current.Parent is null ? string.Empty : current.Path)}/{name}.");
                            }
                        }

                        if (_nodes.Count == MaxNodes)
                        {
                            DeviceTreeErrors.Throw($"more than {MaxNodes} nodes (at offset 0x{tokenOffset:x}).");
                        }

                        var node = new DeviceTreeNode(this, current, name, tokenOffset);
                        current?.AddChild(node);
                        _root ??= node;
                        _nodes.Add(node);
                        current = node;
                        break;
                    }

                case FdtEndNode:
                    if (current is null)
                    {
                        DeviceTreeErrors.Throw($"FDT_END_NODE at offset 0x{tokenOffset:x} closes no open node (unbalanced nesting).");
                    }

                    current = current.Parent;
                    rootClosed = current is null;
                    break;

                case FdtProp:
                    {
                        if (current is null)
                        {
                            DeviceTreeErrors.Throw($"FDT_PROP at offset 0x{tokenOffset:x} lies outside any node.");
                        }

                        if (current.HasChildren)
                        {
                            DeviceTreeErrors.Throw($"FDT_PROP at offset 0x{tokenOffset:x} follows a child node of {current.Path}; properties must precede children.");
                        }

                        if (end - position < 2 * sizeof(uint))
                        {
                            DeviceTreeErrors.Throw($"the property header at offset 0x{position:x} runs past the end of the structure block at 0x{end:x}.");
                        }

                        uint length = ReadUInt32(data, position);
                        uint nameOffset = ReadUInt32(data, position + sizeof(uint));
                        position += 2 * sizeof(uint);
                        if (length > (uint)(end - position))
                        {
                            DeviceTreeErrors.Throw($"the {length}-byte value of the property at offset 0x{tokenOffset:x} runs past the end of the structure block at 0x{end:x}.");
                        }

                        string name = ReadPropertyName(strings, stringsOffset, nameOffset, tokenOffset, names);
                        if (++propertyCount > MaxProperties)
                        {
                            DeviceTreeErrors.Throw($"more than {MaxProperties} properties (at offset 0x{tokenOffset:x}).");
                        }

                        var property = new DeviceTreeProperty(current, name, new ReadOnlyMemory<byte>(data, position, (int)length), position);
                        if (!current.TryAddProperty(property))
                        {
                            DeviceTreeErrors.Throw($"the property at offset 0x{tokenOffset:x} duplicates '{name}' of {current.Path}.");
                        }

                        if (name is "phandle" or "linux,phandle")
                        {
                            RegisterPhandle(current, property);
                        }

                        position = AlignUp(position + (int)length);
                        break;
                    }

                case FdtNop:
                    break;

                case FdtEnd:
                    if (_root is null)
                    {
                        DeviceTreeErrors.Throw($"FDT_END at offset 0x{tokenOffset:x} before any node: the tree has no root.");
                    }

                    if (current is not null)
                    {
                        DeviceTreeErrors.Throw($"FDT_END at offset 0x{tokenOffset:x} while {current.Path} (depth {current.Depth}) is still open (unbalanced nesting).");
                    }

                    if (exactSize && position != end)
                    {
                        DeviceTreeErrors.Throw($"{end - position} bytes of data after FDT_END at offset 0x{tokenOffset:x}, before the end of the structure block at 0x{end:x}.");
                    }

                    return;

                default:
                    DeviceTreeErrors.Throw($"unknown token 0x{token:x8} at offset 0x{tokenOffset:x}.");
                    break;
            }
        }
    }

    /// <summary>Reads a property name from the strings block, checking the offset and the terminator. Ref: devicetree v0.4 §5.5.</summary>
    private static string ReadPropertyName(ReadOnlySpan<byte> strings, int stringsOffset, uint nameOffset, int tokenOffset, Dictionary<int, string> cache)
    {
        if (nameOffset >= (uint)strings.Length)
        {
            DeviceTreeErrors.Throw($"the property at offset 0x{tokenOffset:x} has name offset 0x{nameOffset:x}, outside the 0x{strings.Length:x}-byte strings block at 0x{stringsOffset:x}.");
        }

        if (cache.TryGetValue((int)nameOffset, out string? cached))
        {
            return cached;
        }

        ReadOnlySpan<byte> rest = strings[(int)nameOffset..];
        int length = rest.IndexOf((byte)0);
        if (length < 0)
        {
            DeviceTreeErrors.Throw($"the name of the property at offset 0x{tokenOffset:x} (strings offset 0x{nameOffset:x}) is not terminated within the strings block.");
        }

        if (length == 0 || length > MaxNameLength)
        {
            DeviceTreeErrors.Throw($"the name of the property at offset 0x{tokenOffset:x} (strings offset 0x{nameOffset:x}) is {length} bytes; names are 1 to {MaxNameLength} bytes.");
        }

        string name = Encoding.UTF8.GetString(rest[..length]);
        cache[(int)nameOffset] = name;
        return name;
    }

    /// <summary>Records a node's phandle, refusing the reserved values and duplicates. Ref: devicetree v0.4 §2.3.3.</summary>
    private void RegisterPhandle(DeviceTreeNode node, DeviceTreeProperty property)
    {
        uint phandle = property.AsUInt32();

        // dtc and libfdt never hand out 0 or 0xffffffff: both mean "no phandle".
        if (phandle is 0 or uint.MaxValue)
        {
            property.Fail($"holds the reserved phandle 0x{phandle:x}");
        }

        if (node.Phandle is uint existing && existing != phandle)
        {
            property.Fail($"gives phandle 0x{phandle:x}, but the node already has phandle 0x{existing:x}");
        }

        if (_byPhandle.TryGetValue(phandle, out DeviceTreeNode? other) && other != node)
        {
            property.Fail($"duplicates phandle 0x{phandle:x} of {other.Path}");
        }

        node.Phandle = phandle;
        _byPhandle[phandle] = node;
    }

    // Clamped rather than wrapped: a position past the block's end then fails the next bounds check with a message.
    private static int AlignUp(int offset) => (int)Math.Min(((long)offset + 3) & ~3L, int.MaxValue);

    private static uint ReadUInt32(ReadOnlySpan<byte> data, int offset) =>
        BinaryPrimitives.ReadUInt32BigEndian(data.Slice(offset, sizeof(uint)));
}
