namespace VirtioNet.Discovery;

/// <summary>
/// A RISC-V platform-level interrupt controller (PLIC) found in the device tree: where its registers are and how many
/// interrupt sources it has. Source numbers run from 1 to <see cref="SourceCount"/>; 0 means "no interrupt".
/// </summary>
/// <param name="NodePath">The node's full path, e.g. "/soc/plic@c000000".</param>
/// <param name="BaseAddress">The CPU physical address of its registers.</param>
/// <param name="Length">The size of its register window in bytes.</param>
/// <param name="SourceCount">The number of interrupt sources (<c>riscv,ndev</c>); 0 when the node does not say.</param>
/// <param name="Phandle">The node's phandle, through which devices name it as their interrupt parent; 0 when it has none.</param>
/// <param name="Compatible">The node's most specific <c>compatible</c> string.</param>
public sealed record PlatformInterruptController(
    string NodePath,
    ulong BaseAddress,
    ulong Length,
    uint SourceCount,
    uint Phandle,
    string Compatible)
{
    /// <summary>
    /// The <c>compatible</c> strings that mark a PLIC: the SiFive binding QEMU lists first, and the generic name
    /// Linux's driver also matches.
    /// </summary>
    public static IReadOnlyList<string> CompatibleStrings { get; } = ["sifive,plic-1.0.0", "riscv,plic0"];

    /// <summary>True when <paramref name="node"/> is compatible with one of <see cref="CompatibleStrings"/>.</summary>
    public static bool IsPlatformInterruptController(DeviceTreeNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        foreach (string compatible in CompatibleStrings)
        {
            if (node.IsCompatible(compatible))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Every enabled PLIC in the tree, sorted by base address (QEMU's virt machine has one per socket).</summary>
    /// <exception cref="Core.VirtioException">A PLIC node without a usable <c>reg</c> (<see cref="Core.VirtioErrorReason.MalformedDescription"/>).</exception>
    public static IReadOnlyList<PlatformInterruptController> Find(FlattenedDeviceTree tree)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var found = new List<PlatformInterruptController>();
        foreach (DeviceTreeNode node in tree.Nodes)
        {
            if (IsPlatformInterruptController(node) && node.IsEnabled)
            {
                found.Add(FromNode(node));
            }
        }

        found.Sort((a, b) => a.BaseAddress.CompareTo(b.BaseAddress));
        return found;
    }

    /// <summary>Describes a PLIC node.</summary>
    /// <exception cref="Core.VirtioException">The node has no <c>reg</c>, or it is not CPU-addressable.</exception>
    public static PlatformInterruptController FromNode(DeviceTreeNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        (ulong address, ulong length) = VirtioMmioDiscovery.GetCpuRegion(node, "PLIC");
        uint sourceCount = node.TryGetProperty("riscv,ndev", out DeviceTreeProperty? ndev) ? ndev.AsUInt32() : 0;
        IReadOnlyList<string> compatible = node.Compatible;
        return new PlatformInterruptController(
            node.Path,
            address,
            length,
            sourceCount,
            node.Phandle ?? 0,
            compatible.Count > 0 ? compatible[0] : string.Empty);
    }
}
