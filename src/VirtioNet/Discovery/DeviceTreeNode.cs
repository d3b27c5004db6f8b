using System.Diagnostics.CodeAnalysis;

namespace VirtioNet.Discovery;

/// <summary>
/// A node of a parsed device tree: its name, place in the tree, properties and children, with helpers for the
/// standard properties (<c>compatible</c>, <c>status</c>, <c>phandle</c>, <c>#address-cells</c>, <c>#size-cells</c>,
/// <c>reg</c>, <c>ranges</c>) and for interrupts (<see cref="GetInterruptParent"/>, <see cref="TryGetInterrupts"/>).
/// Ref: devicetree v0.4 §2.2 and §2.3.
/// </summary>
/// <remarks>
/// Nodes are immutable once <see cref="FlattenedDeviceTree.Parse"/> returns. Parsing checks the blob's structure, not
/// the values of standard properties: those are decoded on use. Every member that decodes a property (including
/// <see cref="Compatible"/>, <see cref="IsEnabled"/>, <see cref="AddressCells"/> and <see cref="SizeCells"/>) throws
/// <see cref="Core.VirtioException"/> with <see cref="Core.VirtioErrorReason.MalformedDescription"/> when the property
/// is present but has the wrong shape; <c>TryX</c> helpers return false only when the property is absent.
/// </remarks>
public sealed partial class DeviceTreeNode
{
    /// <summary>
    /// The largest <c>#address-cells</c> or <c>#size-cells</c> whose values this library decodes: two cells fill a
    /// <see cref="ulong"/>. Buses with wider addresses (PCI's three cells) need their own decoding.
    /// </summary>
    public const uint MaxDecodedCells = 2;

    /// <summary>#address-cells when the property is absent. Ref: devicetree v0.4 §2.3.5.</summary>
    public const uint DefaultAddressCells = 2;

    /// <summary>#size-cells when the property is absent. Ref: devicetree v0.4 §2.3.5.</summary>
    public const uint DefaultSizeCells = 1;

    // Filled by the parser, then only read.
    private readonly List<DeviceTreeNode> _children = [];
    private readonly Dictionary<string, DeviceTreeProperty> _properties = new(StringComparer.Ordinal);

    // Paths are built on first use: building them eagerly would cost depth × name length for every node of a hostile blob.
    private string? _path;

    internal DeviceTreeNode(FlattenedDeviceTree tree, DeviceTreeNode? parent, string name, int blobOffset)
    {
        Tree = tree;
        Parent = parent;
        Name = name;
        BlobOffset = blobOffset;
        Depth = parent is null ? 0 : parent.Depth + 1;
        int at = name.IndexOf('@');
        UnitName = at < 0 ? name : name[..at];
        UnitAddress = at < 0 ? null : name[(at + 1)..];
    }

    /// <summary>The tree the node belongs to.</summary>
    public FlattenedDeviceTree Tree { get; }

    /// <summary>The node name with its unit address, e.g. "virtio_mmio@10008000"; empty for the root.</summary>
    public string Name { get; }

    /// <summary>The node name without the unit address, e.g. "virtio_mmio".</summary>
    public string UnitName { get; }

    /// <summary>The unit address (the text after '@'), e.g. "10008000"; null when the name has none.</summary>
    public string? UnitAddress { get; }

    /// <summary>The full path from the root, e.g. "/soc/virtio_mmio@10008000"; "/" for the root. Ref: devicetree v0.4 §2.2.3.</summary>
    public string Path => _path ??= Parent is null ? "/" : (Parent.Parent is null ? "/" + Name : Parent.Path + "/" + Name);

    /// <summary>The parent node; null for the root.</summary>
    public DeviceTreeNode? Parent { get; }

    /// <summary>How deep the node lies: 0 for the root.</summary>
    public int Depth { get; }

    /// <summary>The child nodes, in blob order.</summary>
    public IReadOnlyList<DeviceTreeNode> Children => _children;

    /// <summary>The properties by name, in blob order when enumerated.</summary>
    public IReadOnlyDictionary<string, DeviceTreeProperty> Properties => _properties;

    /// <summary>The node's phandle (from <c>phandle</c>, or the older <c>linux,phandle</c>); null when it has none. Ref: devicetree v0.4 §2.3.3.</summary>
    public uint? Phandle { get; internal set; }

    /// <summary>Where the node's FDT_BEGIN_NODE token lies in the blob, for messages.</summary>
    internal int BlobOffset { get; }

    /// <summary>True once a child has been added: the parser refuses properties after that (§5.4.2).</summary>
    internal bool HasChildren => _children.Count > 0;

    /// <summary>
    /// The <c>compatible</c> strings, most specific first; empty when the node has none. Ref: devicetree v0.4 §2.3.1.
    /// </summary>
    public IReadOnlyList<string> Compatible =>
        _properties.TryGetValue("compatible", out DeviceTreeProperty? p) ? p.AsStringList() : [];

    /// <summary>
    /// True when the node's <c>status</c> is "okay" (or the older "ok"), or absent; false for "disabled", "reserved",
    /// "fail" and anything else. Ref: devicetree v0.4 §2.3.4.
    /// </summary>
    public bool IsEnabled
    {
        get
        {
            if (!_properties.TryGetValue("status", out DeviceTreeProperty? p))
            {
                return true;
            }

            string status = p.AsString();
            return status is "okay" or "ok";
        }
    }

    /// <summary>True when the node has the empty <c>interrupt-controller</c> property. Ref: devicetree v0.4 §2.4.2.</summary>
    public bool IsInterruptController => _properties.ContainsKey("interrupt-controller");

    /// <summary>
    /// The <c>#address-cells</c> this node gives its children's <c>reg</c> (2 when absent). Ref: devicetree v0.4 §2.3.5.
    /// </summary>
    public uint AddressCells => GetCellCount("#address-cells", DefaultAddressCells);

    /// <summary>
    /// The <c>#size-cells</c> this node gives its children's <c>reg</c> (1 when absent). Ref: devicetree v0.4 §2.3.5.
    /// </summary>
    public uint SizeCells => GetCellCount("#size-cells", DefaultSizeCells);

    /// <summary>Looks a property up by name.</summary>
    public bool TryGetProperty(string name, [MaybeNullWhen(false)] out DeviceTreeProperty property) =>
        _properties.TryGetValue(name, out property);

    /// <summary>True when one of the node's <c>compatible</c> strings is exactly <paramref name="compatible"/>.</summary>
    public bool IsCompatible(string compatible)
    {
        ArgumentNullException.ThrowIfNull(compatible);
        if (!_properties.TryGetValue("compatible", out DeviceTreeProperty? p))
        {
            return false;
        }

        foreach (string entry in p.AsStringList())
        {
            if (string.Equals(entry, compatible, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Finds a descendant by a path relative to this node ("soc/plic@c000000"); a leading '/' starts from the root.
    /// A component without a unit address matches a child by <see cref="UnitName"/> when exactly one child has that
    /// name (devicetree v0.4 §2.2.3 lets a path omit an unambiguous unit address). Returns null when nothing matches.
    /// </summary>
    public DeviceTreeNode? FindNode(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        DeviceTreeNode node = this;
        if (path.StartsWith('/'))
        {
            node = Tree.Root;
            path = path[1..];
        }

        if (path.Length == 0)
        {
            return node;
        }

        foreach (string component in path.Split('/'))
        {
            DeviceTreeNode? next = node.FindChild(component);
            if (next is null)
            {
                return null;
            }

            node = next;
        }

        return node;
    }

    /// <summary>
    /// Decodes <c>reg</c> into (address, size) pairs using the parent's <c>#address-cells</c> and <c>#size-cells</c>.
    /// The addresses are in the parent bus's address space; <see cref="TryTranslateAddress"/> on the parent maps them
    /// to CPU physical addresses. Returns false when the node has no <c>reg</c>. Ref: devicetree v0.4 §2.3.6.
    /// </summary>
    /// <exception cref="Core.VirtioException">
    /// <c>reg</c> is not a whole number of entries, or the parent's cell counts do not fit a <see cref="ulong"/>
    /// (address cells 1-2, size cells 0-2).
    /// </exception>
    public bool TryGetReg(out (ulong Address, ulong Size)[] regions)
    {
        if (!_properties.TryGetValue("reg", out DeviceTreeProperty? reg))
        {
            regions = [];
            return false;
        }

        uint addressCells = Parent?.AddressCells ?? DefaultAddressCells;
        uint sizeCells = Parent?.SizeCells ?? DefaultSizeCells;
        if (addressCells is 0 or > MaxDecodedCells || sizeCells > MaxDecodedCells)
        {
            reg.Fail($"cannot be decoded: the parent's #address-cells = {addressCells} and #size-cells = {sizeCells} (address cells must be 1-{MaxDecodedCells}, size cells 0-{MaxDecodedCells})");
        }

        uint[] cells = reg.AsUInt32Array();
        int entryCells = (int)(addressCells + sizeCells);
        if (cells.Length % entryCells != 0)
        {
            reg.Fail($"holds {cells.Length} cells, not a whole number of {entryCells}-cell (address, size) entries");
        }

        regions = new (ulong, ulong)[cells.Length / entryCells];
        for (int i = 0; i < regions.Length; i++)
        {
            ReadOnlySpan<uint> entry = cells.AsSpan(i * entryCells, entryCells);
            regions[i] = (Combine(entry[..(int)addressCells]), Combine(entry[(int)addressCells..]));
        }

        return true;
    }

    /// <summary>
    /// Translates an address of this node's own address space (the space its children's <c>reg</c> values live in)
    /// into a CPU physical address, through the <c>ranges</c> of this node and each ancestor up to the root.
    /// Returns false when some bus on the way has no <c>ranges</c> (its children are not memory-mapped) or no range
    /// covers the address. An empty <c>ranges</c> is the identity. Ref: devicetree v0.4 §2.3.8.
    /// </summary>
    public bool TryTranslateAddress(ulong address, out ulong cpuAddress)
    {
        cpuAddress = 0;
        for (DeviceTreeNode bus = this; bus.Parent is not null; bus = bus.Parent)
        {
            if (!bus._properties.TryGetValue("ranges", out DeviceTreeProperty? ranges))
            {
                return false;
            }

            if (ranges.IsEmpty)
            {
                continue;
            }

            uint childCells = bus.AddressCells;
            uint parentCells = bus.Parent.AddressCells;
            uint sizeCells = bus.SizeCells;
            if (childCells is 0 or > MaxDecodedCells || parentCells is 0 or > MaxDecodedCells || sizeCells is 0 or > MaxDecodedCells)
            {
                ranges.Fail($"cannot be decoded: child address cells {childCells}, parent address cells {parentCells}, size cells {sizeCells} (each must be 1-{MaxDecodedCells})");
            }

            uint[] cells = ranges.AsUInt32Array();
            int entryCells = (int)(childCells + parentCells + sizeCells);
            if (cells.Length % entryCells != 0)
            {
                ranges.Fail($"holds {cells.Length} cells, not a whole number of {entryCells}-cell (child, parent, size) entries");
            }

            bool found = false;
            for (int i = 0; i < cells.Length && !found; i += entryCells)
            {
                ReadOnlySpan<uint> entry = cells.AsSpan(i, entryCells);
                ulong childBase = Combine(entry[..(int)childCells]);
                ulong parentBase = Combine(entry.Slice((int)childCells, (int)parentCells));
                ulong size = Combine(entry[(int)(childCells + parentCells)..]);
                if (address >= childBase && address - childBase < size)
                {
                    ulong offset = address - childBase;
                    if (parentBase > ulong.MaxValue - offset)
                    {
                        ranges.Fail($"maps 0x{address:x} past the end of the 64-bit address space");
                    }

                    address = parentBase + offset;
                    found = true;
                }
            }

            if (!found)
            {
                return false;
            }
        }

        cpuAddress = address;
        return true;
    }

    /// <inheritdoc/>
    public override string ToString() => Path;

    internal void AddChild(DeviceTreeNode child) => _children.Add(child);

    internal bool TryAddProperty(DeviceTreeProperty property) => _properties.TryAdd(property.Name, property);

    internal DeviceTreeNode? FindChildExact(string name)
    {
        foreach (DeviceTreeNode child in _children)
        {
            if (string.Equals(child.Name, name, StringComparison.Ordinal))
            {
                return child;
            }
        }

        return null;
    }

    /// <summary>Reads an optional single-cell property such as <c>#address-cells</c>.</summary>
    internal uint GetCellCount(string name, uint whenAbsent) =>
        _properties.TryGetValue(name, out DeviceTreeProperty? p) ? p.AsUInt32() : whenAbsent;

    private DeviceTreeNode? FindChild(string component)
    {
        if (component.Length == 0)
        {
            return null;
        }

        DeviceTreeNode? exact = FindChildExact(component);
        if (exact is not null || component.Contains('@'))
        {
            return exact;
        }

        DeviceTreeNode? byUnitName = null;
        foreach (DeviceTreeNode child in _children)
        {
            if (string.Equals(child.UnitName, component, StringComparison.Ordinal))
            {
                if (byUnitName is not null)
                {
                    return null; // Ambiguous: §2.2.3 allows omitting the unit address only when the path stays unambiguous.
                }

                byUnitName = child;
            }
        }

        return byUnitName;
    }

    /// <summary>Joins one or two big-endian cells (most significant first) into a number; zero cells give 0.</summary>
    private static ulong Combine(ReadOnlySpan<uint> cells)
    {
        ulong value = 0;
        foreach (uint cell in cells)
        {
            value = (value << 32) | cell;
        }

        return value;
    }
}
