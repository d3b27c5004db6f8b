namespace VirtioNet.Discovery.Pci;

/// <summary>
/// Finds generic ECAM PCI host bridges in a device tree: <c>reg</c> (the ECAM window), <c>bus-range</c>,
/// <c>ranges</c> with three address cells, <c>interrupt-map</c> and <c>interrupt-map-mask</c>. Every malformed
/// property fails with <see cref="Core.VirtioErrorReason.MalformedDescription"/>.
/// </summary>
public static class PciHostBridgeDiscovery
{
    /// <summary>The <c>compatible</c> string of a generic ECAM host bridge.</summary>
    public const string CompatibleString = "pci-host-ecam-generic";

    /// <summary>The size of one bus's configuration space in ECAM.</summary>
    public const ulong EcamBusSize = 1UL << 20;

    /// <summary>Every enabled generic ECAM host bridge in <paramref name="tree"/>.</summary>
    public static IReadOnlyList<PciHostBridge> Find(FlattenedDeviceTree tree)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var list = new List<PciHostBridge>();
        foreach (DeviceTreeNode node in tree.FindCompatible(CompatibleString))
        {
            if (node.IsEnabled)
            {
                list.Add(FromNode(node));
            }
        }

        return list;
    }

    /// <summary>Describes one host bridge node.</summary>
    public static PciHostBridge FromNode(DeviceTreeNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.AddressCells != 3)
        {
            DeviceTreeErrors.Throw($"the PCI host bridge {node.Path} has #address-cells = {node.AddressCells}; a PCI bus has 3.");
        }

        if (!node.TryGetReg(out (ulong Address, ulong Size)[] reg) || reg.Length == 0 || reg[0].Size == 0)
        {
            DeviceTreeErrors.Throw($"the PCI host bridge {node.Path} has no ECAM window in 'reg'.");
        }

        ulong ecam = 0;
        if (node.Parent is null || !node.Parent.TryTranslateAddress(reg[0].Address, out ecam))
        {
            DeviceTreeErrors.Throw($"the ECAM window 0x{reg[0].Address:x} of {node.Path} is not reachable from the CPU.");
        }

        int busStart = 0;
        int busEnd = 255;
        if (node.TryGetProperty("bus-range", out DeviceTreeProperty? busRange))
        {
            uint[] cells = busRange.AsUInt32Array();
            if (cells.Length != 2 || cells[0] > cells[1] || cells[1] > 255)
            {
                busRange.Fail("is not two cells <first last> with first <= last <= 255");
            }

            busStart = (int)cells[0];
            busEnd = (int)cells[1];
        }

        // The window may cover fewer buses than bus-range names (Linux trims the range the same way); none at all is an error.
        ulong buses = reg[0].Size / EcamBusSize;
        if (buses == 0)
        {
            DeviceTreeErrors.Throw($"the ECAM window of {node.Path} is 0x{reg[0].Size:x} bytes, less than one bus (0x{EcamBusSize:x}).");
        }

        busEnd = (int)Math.Min((ulong)busEnd, (ulong)busStart + buses - 1);
        IReadOnlyList<PciWindow> windows = ParseRanges(node);
        (uint maskHigh, uint maskPin, IReadOnlyList<PciInterruptMapEntry> map) = ParseInterruptMap(node);
        return new PciHostBridge(node.Path, ecam, reg[0].Size, busStart, busEnd, windows, maskHigh, maskPin, map);
    }

    private static List<PciWindow> ParseRanges(DeviceTreeNode node)
    {
        var windows = new List<PciWindow>();
        if (!node.TryGetProperty("ranges", out DeviceTreeProperty? ranges))
        {
            return windows;
        }

        uint parentCells = node.Parent!.AddressCells;
        uint sizeCells = node.SizeCells;
        if (parentCells is 0 or > 2 || sizeCells is 0 or > 2)
        {
            ranges.Fail($"cannot be decoded: parent #address-cells {parentCells} and #size-cells {sizeCells} must be 1-2");
        }

        uint[] cells = ranges.AsUInt32Array();
        int entry = 3 + (int)parentCells + (int)sizeCells;
        if (cells.Length % entry != 0)
        {
            ranges.Fail($"holds {cells.Length} cells, not a whole number of {entry}-cell (pci, cpu, size) entries");
        }

        for (int i = 0; i < cells.Length; i += entry)
        {
            uint high = cells[i];
            ulong pci = ((ulong)cells[i + 1] << 32) | cells[i + 2];
            ulong parent = Combine(cells.AsSpan(i + 3, (int)parentCells));
            ulong size = Combine(cells.AsSpan(i + 3 + (int)parentCells, (int)sizeCells));
            var space = (PciAddressSpace)((high >> 24) & 3);
            if (space == PciAddressSpace.Configuration || size == 0)
            {
                continue;
            }

            if (!node.Parent.TryTranslateAddress(parent, out ulong cpu) || pci + size < pci || cpu + size < cpu)
            {
                ranges.Fail($"maps PCI 0x{pci:x} to 0x{parent:x}, which the CPU cannot reach or which wraps around");
            }

            windows.Add(new PciWindow(space, (high & (1u << 30)) != 0, pci, cpu, size));
        }

        return windows;
    }

    private static (uint MaskHigh, uint MaskPin, IReadOnlyList<PciInterruptMapEntry> Map) ParseInterruptMap(DeviceTreeNode node)
    {
        var map = new List<PciInterruptMapEntry>();
        uint maskHigh = 0xffff_ffff;
        uint maskPin = 0xffff_ffff;
        if (node.TryGetProperty("interrupt-map-mask", out DeviceTreeProperty? maskProperty))
        {
            uint[] mask = maskProperty.AsUInt32Array();
            if (mask.Length != 4)
            {
                maskProperty.Fail("is not 4 cells (3 address cells and 1 interrupt cell)");
            }

            maskHigh = mask[0];
            maskPin = mask[3];
        }

        if (!node.TryGetProperty("interrupt-map", out DeviceTreeProperty? mapProperty))
        {
            return (maskHigh, maskPin, map);
        }

        uint childInterruptCells = node.TryGetProperty("#interrupt-cells", out DeviceTreeProperty? ic) ? ic.AsUInt32() : 1;
        if (childInterruptCells != 1)
        {
            mapProperty.Fail($"belongs to a bridge with #interrupt-cells = {childInterruptCells}; PCI INTx uses 1");
        }

        uint[] cells = mapProperty.AsUInt32Array();
        int i = 0;
        while (i < cells.Length)
        {
            // child unit address (3) + child pin (1) + controller phandle (1), then the controller's own cells.
            if (cells.Length - i < 5)
            {
                mapProperty.Fail($"ends inside an entry (cell {i} of {cells.Length})");
            }

            uint high = cells[i];
            uint pin = cells[i + 3];
            uint phandle = cells[i + 4];
            if (!node.Tree.TryFindByPhandle(phandle, out DeviceTreeNode? controller))
            {
                mapProperty.Fail($"names phandle {phandle}, which no node has");
            }

            // An interrupt-map parent's unit address is #address-cells long, 0 when absent (as Linux reads it).
            uint parentAddressCells = controller.TryGetProperty("#address-cells", out DeviceTreeProperty? ac) ? ac.AsUInt32() : 0;
            uint parentInterruptCells = controller.TryGetProperty("#interrupt-cells", out DeviceTreeProperty? pic) ? pic.AsUInt32() : 0;
            if (parentInterruptCells is 0 or > DeviceTreeNode.MaxInterruptCells || parentAddressCells > 3)
            {
                mapProperty.Fail($"names {controller.Path}, whose #address-cells {parentAddressCells} / #interrupt-cells {parentInterruptCells} cannot be used");
            }

            int start = i + 5 + (int)parentAddressCells;
            int end = start + (int)parentInterruptCells;
            if (end > cells.Length)
            {
                mapProperty.Fail($"ends inside the entry for {controller.Path} (cell {i} of {cells.Length})");
            }

            map.Add(new PciInterruptMapEntry(high, pin, controller, cells[start..end]));
            i = end;
        }

        return (maskHigh, maskPin, map);
    }

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
