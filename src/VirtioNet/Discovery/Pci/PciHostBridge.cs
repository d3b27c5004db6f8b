namespace VirtioNet.Discovery.Pci;

/// <summary>
/// A generic ECAM PCI host bridge as a device tree describes it (<c>pci-host-ecam-generic</c>): its configuration
/// window, bus range, address windows and INTx routing. Ref: Linux Documentation/devicetree/bindings/pci/host-generic-pci.yaml;
/// IEEE 1275 PCI bus binding; devicetree v0.4 §2.4.3 (interrupt nexus).
/// </summary>
/// <remarks><see cref="PciHostBridgeDiscovery"/> builds these from a device tree.</remarks>
public sealed class PciHostBridge(
    string nodePath,
    ulong ecamBase,
    ulong ecamSize,
    int busStart,
    int busEnd,
    IReadOnlyList<PciWindow> windows,
    uint interruptMapMaskHigh,
    uint interruptMapMaskPin,
    IReadOnlyList<PciInterruptMapEntry> interruptMap)
{
    /// <summary>The device tree node, e.g. /soc/pci@30000000.</summary>
    public string NodePath { get; } = nodePath ?? throw new ArgumentNullException(nameof(nodePath));

    /// <summary>CPU physical address of the ECAM window (bus <see cref="BusStart"/>, device 0, function 0).</summary>
    public ulong EcamBase { get; } = ecamBase;

    /// <summary>The ECAM window's size (1 MiB per bus).</summary>
    public ulong EcamSize { get; } = ecamSize;

    /// <summary>The first bus number behind the bridge (<c>bus-range</c>).</summary>
    public int BusStart { get; } = busStart >= 0 ? busStart : throw new ArgumentOutOfRangeException(nameof(busStart), busStart, "The first bus number cannot be negative.");

    /// <summary>The last bus number the ECAM window reaches.</summary>
    public int BusEnd { get; } = busEnd >= busStart && busEnd <= 255
        ? busEnd
        : throw new ArgumentOutOfRangeException(nameof(busEnd), busEnd, $"The last bus number must lie between the first ({busStart}) and 255.");

    /// <summary>The I/O and memory windows from <c>ranges</c>.</summary>
    public IReadOnlyList<PciWindow> Windows { get; } = windows ?? throw new ArgumentNullException(nameof(windows));

    /// <summary><c>interrupt-map-mask</c>'s phys.hi cell: which unit address bits select an entry (0x1800: device bits 1:0).</summary>
    public uint InterruptMapMaskHigh { get; } = interruptMapMaskHigh;

    /// <summary><c>interrupt-map-mask</c>'s pin cell.</summary>
    public uint InterruptMapMaskPin { get; } = interruptMapMaskPin;

    /// <summary>The <c>interrupt-map</c> entries.</summary>
    public IReadOnlyList<PciInterruptMapEntry> InterruptMap { get; } = interruptMap ?? throw new ArgumentNullException(nameof(interruptMap));

    /// <summary>The first window of <paramref name="space"/>, or null.</summary>
    public PciWindow? FindWindow(PciAddressSpace space) => Windows.FirstOrDefault(w => w.Space == space);

    /// <summary>The CPU physical address of <paramref name="function"/>'s configuration space.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The bus lies outside the bridge's range or the ECAM window.</exception>
    public ulong GetConfigAddress(PciFunctionAddress function)
    {
        if (function.Bus < BusStart || function.Bus > BusEnd)
        {
            throw new ArgumentOutOfRangeException(nameof(function), $"Bus {function.Bus} lies outside {NodePath}'s buses {BusStart}-{BusEnd}.");
        }

        ulong offset = new PciFunctionAddress((byte)(function.Bus - BusStart), function.Device, function.Function).EcamOffset;
        if (offset + PciHeaderRegisters.ExtendedConfigSpaceSize > EcamSize)
        {
            throw new ArgumentOutOfRangeException(nameof(function), $"{function} lies past the end of {NodePath}'s ECAM window (0x{EcamSize:x} bytes).");
        }

        return EcamBase + offset;
    }

    /// <summary>
    /// The standard INTx swizzle of a PCI-to-PCI bridge: a device's pin <paramref name="pin"/> (1-4) appears on the
    /// bridge's side as ((pin - 1 + device) mod 4) + 1. Ref: PCI-to-PCI Bridge Architecture 1.2 §9.1.
    /// </summary>
    public static int SwizzlePin(int device, int pin)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pin, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pin, 4);
        return ((pin - 1 + device) % 4) + 1;
    }

    /// <summary>
    /// Finds where <paramref name="function"/>'s pin <paramref name="pin"/> arrives, through <c>interrupt-map</c> masked
    /// by <c>interrupt-map-mask</c>. On riscv64 <c>virt</c> the map itself rotates the pins by slot (the swizzle of
    /// the root bus); for a function behind bridges, pass the root-bus device and the pin swizzled by
    /// <see cref="SwizzlePin"/> at each bridge. Returns false when no entry matches.
    /// </summary>
    public bool TryRouteIntx(PciFunctionAddress function, int pin, out PciIntxRoute? route)
    {
        route = null;
        if (pin is < 1 or > 4)
        {
            return false;
        }

        uint key = function.UnitAddressHigh & InterruptMapMaskHigh;
        uint pinKey = (uint)pin & InterruptMapMaskPin;
        foreach (PciInterruptMapEntry entry in InterruptMap)
        {
            if ((entry.UnitAddressHigh & InterruptMapMaskHigh) == key && (entry.Pin & InterruptMapMaskPin) == pinKey && entry.ParentSpecifier.Count > 0)
            {
                route = new PciIntxRoute(pin, entry.Controller.Path, entry.ParentSpecifier[0]);
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc />
    public override string ToString() => $"{NodePath}: ECAM 0x{EcamBase:x} buses {BusStart}-{BusEnd}, {Windows.Count} windows";
}
