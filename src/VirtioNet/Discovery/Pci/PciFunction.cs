namespace VirtioNet.Discovery.Pci;

/// <summary>One PCI function found by enumeration: its identity, header, interrupt pin and BARs.</summary>
/// <remarks>Enumeration builds these; tests may too.</remarks>
public sealed class PciFunction(
    PciFunctionAddress address,
    ulong configAddress,
    ushort vendorId,
    ushort deviceId,
    uint classCode,
    byte revisionId,
    byte headerType,
    ushort subsystemId,
    byte interruptPin,
    IReadOnlyList<PciBar> bars)
{
    /// <summary>Bus, device and function.</summary>
    public PciFunctionAddress Address { get; } = address;

    /// <summary>The CPU physical address of the function's configuration space (in the ECAM window).</summary>
    public ulong ConfigAddress { get; } = configAddress;

    /// <summary>Vendor ID.</summary>
    public ushort VendorId { get; } = vendorId;

    /// <summary>Device ID.</summary>
    public ushort DeviceId { get; } = deviceId;

    /// <summary>Class code: base class in bits 23:16, sub-class 15:8, programming interface 7:0.</summary>
    public uint ClassCode { get; } = classCode;

    /// <summary>Revision ID.</summary>
    public byte RevisionId { get; } = revisionId;

    /// <summary>Header layout (bits 6:0 of Header Type): 0 for a device, 1 for a PCI-to-PCI bridge.</summary>
    public byte HeaderType { get; } = headerType;

    /// <summary>Subsystem ID (type 0 headers; the virtio device type on a transitional virtio device).</summary>
    public ushort SubsystemId { get; } = subsystemId;

    /// <summary>Interrupt Pin: 0 none, 1-4 INTA#-INTD#.</summary>
    public byte InterruptPin { get; } = interruptPin;

    /// <summary>The implemented BARs, sized, with their addresses once assigned.</summary>
    public IReadOnlyList<PciBar> Bars { get; internal set; } = bars ?? throw new ArgumentNullException(nameof(bars));

    /// <summary>True for a PCI-to-PCI bridge (header type 1).</summary>
    public bool IsBridge => HeaderType == 1;

    /// <summary>BAR <paramref name="index"/>, or null when the function does not implement it.</summary>
    public PciBar? GetBar(int index) => Bars.FirstOrDefault(b => b.Index == index);

    /// <inheritdoc />
    public override string ToString() => $"{Address} {VendorId:x4}:{DeviceId:x4} class {ClassCode:x6}";
}
