using System.Diagnostics.CodeAnalysis;

namespace VirtioNet.Discovery;

/// <summary>
/// A device tree read from its flattened form (a DTB), as firmware or QEMU hands it to a kernel: the header fields,
/// the memory reservation block and the node tree. Ref: devicetree v0.4 §5.
/// </summary>
/// <remarks>
/// <see cref="Parse"/> trusts nothing in the blob: every offset, length, name and nesting level is checked, and any
/// violation is reported as a <see cref="Core.VirtioException"/> with
/// <see cref="Core.VirtioErrorReason.MalformedDescription"/> saying what is wrong and at which offset. No other
/// exception type escapes for any input. The tree keeps its own copy of the blob, so the caller's buffer can be reused.
/// </remarks>
public sealed partial class FlattenedDeviceTree
{
    /// <summary>The value of the header's <c>magic</c> field, big-endian in the blob. Ref: devicetree v0.4 §5.2.</summary>
    public const uint Magic = 0xD00DFEED;

    /// <summary>The oldest format version read: 16 is the first whose node names are unit names, not full paths.</summary>
    public const uint OldestVersion = 16;

    /// <summary>The newest format version this parser implements; a blob is accepted when its <c>last_comp_version</c> is at most this.</summary>
    public const uint NewestVersion = 17;

    /// <summary>The deepest nesting accepted (the root is depth 0). Real trees are under 10 deep.</summary>
    public const int MaxDepth = 64;

    /// <summary>The most nodes accepted. QEMU's riscv64 virt tree has about 30; large SoC trees a few thousand.</summary>
    public const int MaxNodes = 32_768;

    /// <summary>The most properties accepted, over all nodes.</summary>
    public const int MaxProperties = 262_144;

    /// <summary>The most memory reservation entries accepted (before the terminating empty entry).</summary>
    public const int MaxMemoryReservations = 1_024;

    /// <summary>
    /// The longest node or property name accepted, in bytes. The spec allows 31 characters for a node or property
    /// name plus a unit address; this leaves generous room while bounding what a hostile blob can make us allocate.
    /// </summary>
    public const int MaxNameLength = 256;

    private readonly List<DeviceTreeNode> _nodes = [];
    private readonly Dictionary<uint, DeviceTreeNode> _byPhandle = [];
    private readonly List<DeviceTreeMemoryReservation> _reservations = [];
    private DeviceTreeNode? _root;

    private FlattenedDeviceTree(uint version, uint lastCompatibleVersion, uint bootCpuIdPhysical, uint totalSize)
    {
        Version = version;
        LastCompatibleVersion = lastCompatibleVersion;
        BootCpuIdPhysical = bootCpuIdPhysical;
        TotalSize = totalSize;
    }

    /// <summary>The header's <c>version</c>: the format version the blob was written in.</summary>
    public uint Version { get; }

    /// <summary>The header's <c>last_comp_version</c>: the oldest format version the blob is compatible with.</summary>
    public uint LastCompatibleVersion { get; }

    /// <summary>The header's <c>boot_cpuid_phys</c>: the physical id of the boot CPU.</summary>
    public uint BootCpuIdPhysical { get; }

    /// <summary>The header's <c>totalsize</c>: the size of the blob in bytes, all blocks and gaps included.</summary>
    public uint TotalSize { get; }

    /// <summary>The root node ("/").</summary>
    public DeviceTreeNode Root => _root!;

    /// <summary>Every node in blob order (depth first, parents before children), the root first.</summary>
    public IReadOnlyList<DeviceTreeNode> Nodes => _nodes;

    /// <summary>The memory reservation block, without its terminating empty entry. Ref: devicetree v0.4 §5.3.</summary>
    public IReadOnlyList<DeviceTreeMemoryReservation> MemoryReservations => _reservations;

    /// <summary>
    /// Finds a node by its full path ("/soc/plic@c000000"), or by a path starting with an alias defined under
    /// <c>/aliases</c> ("serial0/..."). Returns null when nothing matches. Ref: devicetree v0.4 §2.2.3 and §3.3.
    /// </summary>
    public DeviceTreeNode? FindNode(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.StartsWith('/'))
        {
            return Root.FindNode(path);
        }

        int slash = path.IndexOf('/');
        string alias = slash < 0 ? path : path[..slash];
        DeviceTreeNode? aliases = Root.FindChildExact("aliases");
        if (alias.Length == 0 || aliases is null || !aliases.TryGetProperty(alias, out DeviceTreeProperty? target))
        {
            return null;
        }

        string aliasPath = target.AsString();
        if (!aliasPath.StartsWith('/'))
        {
            target.Fail($"is an alias to '{aliasPath}', which is not a full path");
        }

        DeviceTreeNode? node = Root.FindNode(aliasPath);
        return node is null || slash < 0 ? node : node.FindNode(path[(slash + 1)..]);
    }

    /// <summary>Finds the node whose <c>phandle</c> is <paramref name="phandle"/>. Ref: devicetree v0.4 §2.3.3.</summary>
    public bool TryFindByPhandle(uint phandle, [MaybeNullWhen(false)] out DeviceTreeNode node) =>
        _byPhandle.TryGetValue(phandle, out node);

    /// <summary>Every node one of whose <c>compatible</c> strings is <paramref name="compatible"/>, in blob order.</summary>
    public IReadOnlyList<DeviceTreeNode> FindCompatible(string compatible)
    {
        ArgumentNullException.ThrowIfNull(compatible);
        var found = new List<DeviceTreeNode>();
        foreach (DeviceTreeNode node in _nodes)
        {
            if (node.IsCompatible(compatible))
            {
                found.Add(node);
            }
        }

        return found;
    }
}
