namespace VirtioNet.Discovery;

/// <summary>Interrupt helpers: the interrupt parent and the decoding of <c>interrupts</c> and <c>interrupts-extended</c>.</summary>
public sealed partial class DeviceTreeNode
{
    /// <summary>
    /// The largest <c>#interrupt-cells</c> accepted. Known bindings use 1 (PLIC, APLIC), 2, 3 (GIC) or 4 (GICv3 with
    /// PPI partitions); a larger value is far more likely a corrupt blob than a real controller.
    /// </summary>
    public const uint MaxInterruptCells = 4;

    /// <summary>
    /// The node's interrupt parent: the node named by <c>interrupt-parent</c>, or failing that the tree parent, repeated
    /// until a node with <c>#interrupt-cells</c> is reached (an interrupt controller or a nexus). Returns null when the
    /// walk reaches past the root without finding one. Ref: devicetree v0.4 §2.4.1 (interrupt-parent).
    /// </summary>
    /// <exception cref="Core.VirtioException">An <c>interrupt-parent</c> names no node, or the chain loops.</exception>
    public DeviceTreeNode? GetInterruptParent()
    {
        DeviceTreeNode node = this;

        // interrupt-parent phandles can form a cycle in a corrupt blob; a walk longer than the tree has nodes is one.
        for (int steps = 0; steps <= Tree.Nodes.Count; steps++)
        {
            DeviceTreeNode? next;
            if (node._properties.TryGetValue("interrupt-parent", out DeviceTreeProperty? link))
            {
                next = ResolvePhandle(link, link.AsUInt32());
            }
            else
            {
                next = node.Parent;
            }

            if (next is null)
            {
                return null;
            }

            if (next._properties.ContainsKey("#interrupt-cells"))
            {
                return next;
            }

            node = next;
        }

        DeviceTreeErrors.Throw($"the interrupt-parent chain of {Path} loops without reaching a node with #interrupt-cells.");
        return null;
    }

    /// <summary>
    /// Decodes the interrupts the node generates: <c>interrupts-extended</c> when present (each entry names its own
    /// controller), otherwise <c>interrupts</c> split by the interrupt parent's <c>#interrupt-cells</c>. Returns false
    /// when the node has neither property. Ref: devicetree v0.4 §2.4.1.
    /// </summary>
    /// <exception cref="Core.VirtioException">
    /// No interrupt parent, a controller without a usable <c>#interrupt-cells</c> (1 to <see cref="MaxInterruptCells"/>),
    /// a dangling phandle, or a value that is not a whole number of specifiers.
    /// </exception>
    public bool TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> interrupts)
    {
        if (_properties.TryGetValue("interrupts-extended", out DeviceTreeProperty? extended))
        {
            interrupts = DecodeInterruptsExtended(extended);
            return true;
        }

        if (!_properties.TryGetValue("interrupts", out DeviceTreeProperty? plain))
        {
            interrupts = [];
            return false;
        }

        DeviceTreeNode? controller = GetInterruptParent();
        if (controller is null)
        {
            plain.Fail("has no interrupt parent: neither the node nor any ancestor leads to a node with #interrupt-cells");
        }

        uint cellCount = controller.GetInterruptCells(plain);
        uint[] cells = plain.AsUInt32Array();
        if (cells.Length % cellCount != 0)
        {
            plain.Fail($"holds {cells.Length} cells, not a whole number of {cellCount}-cell specifiers of {controller.Path}");
        }

        var list = new List<DeviceTreeInterrupt>(cells.Length / (int)cellCount);
        for (int i = 0; i < cells.Length; i += (int)cellCount)
        {
            list.Add(new DeviceTreeInterrupt(controller, cells[i..(i + (int)cellCount)]));
        }

        interrupts = list;
        return true;
    }

    private List<DeviceTreeInterrupt> DecodeInterruptsExtended(DeviceTreeProperty property)
    {
        uint[] cells = property.AsUInt32Array();
        var list = new List<DeviceTreeInterrupt>();
        int i = 0;
        while (i < cells.Length)
        {
            DeviceTreeNode controller = ResolvePhandle(property, cells[i]);
            uint cellCount = controller.GetInterruptCells(property);
            i++;
            if (cells.Length - i < cellCount)
            {
                property.Fail($"ends inside a {cellCount}-cell specifier of {controller.Path} (cell {i} of {cells.Length})");
            }

            list.Add(new DeviceTreeInterrupt(controller, cells[i..(i + (int)cellCount)]));
            i += (int)cellCount;
        }

        return list;
    }

    /// <summary>This controller's <c>#interrupt-cells</c>, checked; <paramref name="user"/> is named in failures.</summary>
    private uint GetInterruptCells(DeviceTreeProperty user)
    {
        if (!_properties.TryGetValue("#interrupt-cells", out DeviceTreeProperty? p))
        {
            user.Fail($"points at {Path}, which has no #interrupt-cells");
        }

        uint cells = p.AsUInt32();
        if (cells is 0 or > MaxInterruptCells)
        {
            user.Fail($"points at {Path}, whose #interrupt-cells = {cells} is outside 1-{MaxInterruptCells}");
        }

        return cells;
    }

    private DeviceTreeNode ResolvePhandle(DeviceTreeProperty user, uint phandle)
    {
        if (!Tree.TryFindByPhandle(phandle, out DeviceTreeNode? target))
        {
            user.Fail($"names phandle 0x{phandle:x}, which no node has");
        }

        return target;
    }
}
