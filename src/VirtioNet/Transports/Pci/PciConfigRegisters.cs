namespace VirtioNet.Transports.Pci;

/// <summary>
/// The parts of a PCI function's configuration space a virtio-pci transport touches: the identity and command
/// registers of the type 0 header, the capability list, the virtio vendor capability (<c>struct virtio_pci_cap</c>)
/// and the MSI-X capability. Offsets are from the start of configuration space, or from the start of the capability
/// for the <c>Cap*</c>, <c>VirtioCap*</c> and <c>Msix*</c> fields. Ref: virtio v1.2 §4.1.4 (Virtio Structure PCI
/// Capabilities); PCI Local Bus 3.0 §6.1, §6.7, §6.8.2.
/// </summary>
/// <remarks>
/// Enumeration (BARs, header type, bus numbers) keeps its own map in <c>Discovery.Pci.PciHeaderRegisters</c>: the
/// discovery layer may not depend on transports, and a transport needs none of the enumeration registers.
/// </remarks>
public static class PciConfigRegisters
{
    /// <summary>The size of conventional configuration space: capability pointers must stay below it.</summary>
    public const int ConfigSpaceSize = 0x100;

    /// <summary>The first byte after the type 0 header: no capability may start below it.</summary>
    public const int FirstCapabilityOffset = 0x40;

    /// <summary>Vendor ID (0x00), 16-bit, R. 0xffff reads from an absent function.</summary>
    public const int VendorId = 0x00;

    /// <summary>Device ID (0x02), 16-bit, R.</summary>
    public const int DeviceId = 0x02;

    /// <summary>Command (0x04), 16-bit, RW.</summary>
    public const int Command = 0x04;

    /// <summary>Status (0x06), 16-bit, R (bits RW1C).</summary>
    public const int Status = 0x06;

    /// <summary>Revision ID (0x08), 8-bit, R. virtio: 0 for a transitional device, 1 or more for a modern one.</summary>
    public const int RevisionId = 0x08;

    /// <summary>Subsystem ID (0x2e), 16-bit, R: the virtio device id on a transitional device (§4.1.2.1).</summary>
    public const int SubsystemId = 0x2e;

    /// <summary>Capabilities Pointer (0x34), 8-bit, R: the offset of the first capability; the low two bits are reserved.</summary>
    public const int CapabilitiesPointer = 0x34;

    /// <summary>Interrupt Pin (0x3d), 8-bit, R: 0 none, 1-4 INTA#-INTD#.</summary>
    public const int InterruptPin = 0x3d;

    /// <summary>Command bit 0: I/O Space decoding.</summary>
    public const ushort CommandIoSpace = 1 << 0;

    /// <summary>Command bit 1: Memory Space decoding.</summary>
    public const ushort CommandMemorySpace = 1 << 1;

    /// <summary>Command bit 2: Bus Master, without which the device may not DMA (rings, buffers, MSI-X messages).</summary>
    public const ushort CommandBusMaster = 1 << 2;

    /// <summary>Command bit 10: Interrupt Disable (INTx# masked).</summary>
    public const ushort CommandInterruptDisable = 1 << 10;

    /// <summary>Status bit 4: Capabilities List present.</summary>
    public const ushort StatusCapabilitiesList = 1 << 4;

    /// <summary>Capability ID of MSI-X (0x11).</summary>
    public const byte CapabilityIdMsix = 0x11;

    /// <summary>Capability ID of a vendor-specific capability (0x09): every virtio structure capability is one.</summary>
    public const byte CapabilityIdVendorSpecific = 0x09;

    /// <summary>cap_vndr / Capability ID (+0), 8-bit.</summary>
    public const int CapId = 0;

    /// <summary>cap_next / Next Capability Pointer (+1), 8-bit.</summary>
    public const int CapNext = 1;

    /// <summary>virtio_pci_cap.cap_len (+2), 8-bit: the length of this capability, at least 16.</summary>
    public const int VirtioCapLength = 2;

    /// <summary>virtio_pci_cap.cfg_type (+3), 8-bit: which structure (<see cref="VirtioPciCapabilityType"/>).</summary>
    public const int VirtioCapCfgType = 3;

    /// <summary>virtio_pci_cap.bar (+4), 8-bit: the BAR (0-5) holding the structure.</summary>
    public const int VirtioCapBar = 4;

    /// <summary>virtio_pci_cap.id (+5), 8-bit: tells apart several capabilities of one type.</summary>
    public const int VirtioCapId = 5;

    /// <summary>virtio_pci_cap.offset (+8), 32-bit LE: where the structure starts inside the BAR.</summary>
    public const int VirtioCapOffset = 8;

    /// <summary>virtio_pci_cap.length (+12), 32-bit LE: the structure's length in bytes.</summary>
    public const int VirtioCapStructureLength = 12;

    /// <summary>The size of <c>struct virtio_pci_cap</c>.</summary>
    public const int VirtioCapSize = 16;

    /// <summary>virtio_pci_notify_cap.notify_off_multiplier (+16), 32-bit LE.</summary>
    public const int VirtioNotifyCapMultiplier = 16;

    /// <summary>The size of <c>struct virtio_pci_notify_cap</c>.</summary>
    public const int VirtioNotifyCapSize = 20;

    /// <summary>MSI-X Message Control (+2), 16-bit: table size - 1 in bits 10:0, Function Mask bit 14, MSI-X Enable bit 15.</summary>
    public const int MsixMessageControl = 2;

    /// <summary>MSI-X Table Offset/Table BIR (+4), 32-bit: BAR index in bits 2:0, 8-byte-aligned offset above.</summary>
    public const int MsixTable = 4;

    /// <summary>MSI-X PBA Offset/PBA BIR (+8), 32-bit.</summary>
    public const int MsixPendingBitArray = 8;

    /// <summary>The size of the MSI-X capability.</summary>
    public const int MsixCapSize = 12;

    /// <summary>Message Control bit 15: MSI-X Enable.</summary>
    public const ushort MsixControlEnable = 1 << 15;

    /// <summary>Message Control bit 14: Function Mask (every vector masked).</summary>
    public const ushort MsixControlFunctionMask = 1 << 14;

    /// <summary>The size of one MSI-X table entry.</summary>
    public const int MsixEntrySize = 16;

    /// <summary>MSI-X table entry Message Address (+0), 32-bit, dword-aligned.</summary>
    public const int MsixEntryMessageAddress = 0;

    /// <summary>MSI-X table entry Message Upper Address (+4), 32-bit.</summary>
    public const int MsixEntryMessageUpperAddress = 4;

    /// <summary>MSI-X table entry Message Data (+8), 32-bit.</summary>
    public const int MsixEntryMessageData = 8;

    /// <summary>MSI-X table entry Vector Control (+12), 32-bit: bit 0 masks the vector.</summary>
    public const int MsixEntryVectorControl = 12;
}
