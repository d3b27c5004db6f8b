namespace VirtioNet.Discovery;

/// <summary>
/// Finds the virtio-mmio register windows a device tree describes: every enabled node compatible with "virtio,mmio",
/// with its CPU address, size and interrupt. Ref: virtio v1.2 §4.2; Linux's virtio-mmio binding
/// (Documentation/devicetree/bindings/virtio/mmio.yaml): one <c>reg</c> and one interrupt.
/// </summary>
public static class VirtioMmioDiscovery
{
    /// <summary>The <c>compatible</c> string of a virtio-mmio node.</summary>
    public const string CompatibleString = "virtio,mmio";

    /// <summary>
    /// Lists the virtio-mmio slots of <paramref name="tree"/>, sorted by base address. Nodes whose <c>status</c> is not
    /// "okay" are left out. On QEMU's riscv64 virt machine this is eight slots, 0x10001000 to 0x10008000, with PLIC
    /// sources 1 to 8.
    /// </summary>
    /// <exception cref="Core.VirtioException">
    /// With <see cref="Core.VirtioErrorReason.MalformedDescription"/>: a virtio,mmio node without <c>reg</c> or
    /// interrupts, with an empty or unreachable register window, with an interrupt outside its PLIC's sources, or two
    /// nodes at the same address. The message names the node.
    /// </exception>
    public static IReadOnlyList<VirtioMmioSlot> Find(FlattenedDeviceTree tree)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var slots = new List<VirtioMmioSlot>();
        foreach (DeviceTreeNode node in tree.Nodes)
        {
            if (node.IsCompatible(CompatibleString) && node.IsEnabled)
            {
                slots.Add(FromNode(node));
            }
        }

        slots.Sort((a, b) => a.BaseAddress.CompareTo(b.BaseAddress));
        for (int i = 1; i < slots.Count; i++)
        {
            if (slots[i].BaseAddress - slots[i - 1].BaseAddress < slots[i - 1].Length)
            {
                DeviceTreeErrors.Throw($"virtio,mmio nodes {slots[i - 1].NodePath} and {slots[i].NodePath} overlap at 0x{slots[i].BaseAddress:x}.");
            }
        }

        return slots;
    }

    /// <summary>Describes one virtio,mmio node.</summary>
    /// <exception cref="Core.VirtioException">As for <see cref="Find"/>.</exception>
    public static VirtioMmioSlot FromNode(DeviceTreeNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        (ulong address, ulong length) = GetCpuRegion(node, CompatibleString);

        if (!node.TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> interrupts) || interrupts.Count == 0)
        {
            DeviceTreeErrors.Throw($"the {CompatibleString} node {node.Path} has no interrupts.");
        }

        DeviceTreeInterrupt interrupt = interrupts[0];
        DeviceTreeNode controller = interrupt.Controller;
        uint source = interrupt.Specifier[0];
        if (PlatformInterruptController.IsPlatformInterruptController(controller)
            && controller.TryGetProperty("riscv,ndev", out DeviceTreeProperty? ndev)
            && (source == 0 || source > ndev.AsUInt32()))
        {
            // PLIC source 0 does not exist ("no interrupt"), and sources above riscv,ndev are not wired.
            DeviceTreeErrors.Throw($"the {CompatibleString} node {node.Path} uses interrupt {source}, outside the sources 1-{ndev.AsUInt32()} of {controller.Path}.");
        }

        IReadOnlyList<string> compatible = controller.Compatible;
        return new VirtioMmioSlot(
            node.Path,
            address,
            length,
            source,
            controller.Path,
            compatible.Count > 0 ? compatible[0] : string.Empty);
    }

    /// <summary>The node's first <c>reg</c> entry as a CPU physical region, checked to be non-empty and to fit in 64 bits.</summary>
    internal static (ulong Address, ulong Length) GetCpuRegion(DeviceTreeNode node, string what)
    {
        if (!node.TryGetReg(out (ulong Address, ulong Size)[] regions) || regions.Length == 0)
        {
            DeviceTreeErrors.Throw($"the {what} node {node.Path} has no reg.");
        }

        (ulong busAddress, ulong length) = regions[0];
        if (length == 0)
        {
            DeviceTreeErrors.Throw($"the {what} node {node.Path} has a reg of size 0.");
        }

        if (node.Parent is not null && !node.Parent.TryTranslateAddress(busAddress, out busAddress))
        {
            DeviceTreeErrors.Throw($"the {what} node {node.Path} at bus address 0x{regions[0].Address:x} is not reachable from the CPU (a bus above it has no matching ranges).");
        }

        if (busAddress > ulong.MaxValue - (length - 1))
        {
            DeviceTreeErrors.Throw($"the {what} node {node.Path} at 0x{busAddress:x} with size 0x{length:x} wraps past the end of the address space.");
        }

        return (busAddress, length);
    }
}
