namespace VirtioNet.Discovery.Pci;

/// <summary>
/// The configuration header registers enumeration and resource assignment use. Offsets from the start of a function's
/// configuration space. Ref: PCI Local Bus 3.0 §6.1 (type 0 and type 1 headers), §6.2.5 (Base Address Registers);
/// PCI Express Base 4.0 §7.2.2 (ECAM).
/// </summary>
public static class PciHeaderRegisters
{
    /// <summary>Configuration space per function in ECAM (extended configuration space).</summary>
    public const int ExtendedConfigSpaceSize = 0x1000;

    /// <summary>Vendor ID (0x00), 16-bit, R: 0xffff from an absent function.</summary>
    public const int VendorId = 0x00;

    /// <summary>Device ID (0x02), 16-bit, R.</summary>
    public const int DeviceId = 0x02;

    /// <summary>Command (0x04), 16-bit, RW.</summary>
    public const int Command = 0x04;

    /// <summary>Revision ID (0x08), 8-bit, R.</summary>
    public const int RevisionId = 0x08;

    /// <summary>Class Code (0x09), 24-bit, R: programming interface, sub-class, base class (read as the dword at 0x08 >> 8).</summary>
    public const int ClassCode = 0x09;

    /// <summary>Header Type (0x0e), 8-bit, R: bits 6:0 the layout (0 device, 1 PCI-PCI bridge), bit 7 multi-function.</summary>
    public const int HeaderType = 0x0e;

    /// <summary>Base Address Register 0 (0x10), 32-bit RW; BAR n is at 0x10 + 4n (six in a type 0 header, two in type 1).</summary>
    public const int Bar0 = 0x10;

    /// <summary>Subsystem ID (0x2e), 16-bit, R (type 0).</summary>
    public const int SubsystemId = 0x2e;

    /// <summary>Interrupt Pin (0x3d), 8-bit, R: 0 none, 1-4 INTA#-INTD#.</summary>
    public const int InterruptPin = 0x3d;

    /// <summary>Header Type bit 7: the device has functions 1-7.</summary>
    public const byte HeaderTypeMultiFunction = 0x80;

    /// <summary>Command bit 0: I/O Space decoding.</summary>
    public const ushort CommandIoSpace = 1 << 0;

    /// <summary>Command bit 1: Memory Space decoding.</summary>
    public const ushort CommandMemorySpace = 1 << 1;

    /// <summary>Command bit 2: Bus Master.</summary>
    public const ushort CommandBusMaster = 1 << 2;

    /// <summary>BAR bit 0: 1 for an I/O BAR, 0 for a memory BAR.</summary>
    public const uint BarIoSpace = 1;

    /// <summary>Memory BAR bits 2:1: 00 32-bit, 10 64-bit (this BAR and the next form one).</summary>
    public const uint BarMemoryTypeMask = 0x6;

    /// <summary>Memory BAR type 10: 64-bit.</summary>
    public const uint BarMemoryType64 = 0x4;

    /// <summary>Memory BAR bit 3: prefetchable.</summary>
    public const uint BarPrefetchable = 0x8;
}
