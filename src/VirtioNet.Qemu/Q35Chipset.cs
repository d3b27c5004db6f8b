namespace VirtioNet.Qemu;

/// <summary>
/// The facts of QEMU's <c>q35</c> machine a platform needs in place of a device tree: the chipset (Intel 82G33/P35
/// MCH at 00:00.0, ICH9 LPC bridge at 00:1f.0), where PCIe ECAM and the PCI windows go, and how INTx reaches the
/// IOAPIC. Register names are the datasheets'. Ref: Intel 3 Series Chipset Family datasheet (316966) §5.1 (MCH
/// PCIEXBAR); Intel ICH9 datasheet (316972) §13.1 (LPC PIRQx_ROUT); QEMU hw/pci-host/q35.c, hw/isa/lpc_ich9.c.
/// </summary>
/// <remarks>
/// No firmware runs on the parked CPU, so the platform does what SeaBIOS or OVMF would: it enables ECAM through
/// PCIEXBAR (reached with configuration mechanism #1 on ports 0xCF8/0xCFC, the only way in before ECAM exists), then
/// places BARs in the windows below. The addresses are SeaBIOS's choices, so a reader who knows a q35 guest finds
/// everything where Linux shows it there.
/// </remarks>
public static class Q35Chipset
{
    /// <summary>CONFIG_ADDRESS (0xCF8): enable bit 31, bus 23:16, device 15:11, function 10:8, dword offset 7:2. Ref: PCI Local Bus 3.0 §3.2.2.3.2.</summary>
    public const ushort ConfigAddressPort = 0xcf8;

    /// <summary>CONFIG_DATA (0xCFC-0xCFF): the dword CONFIG_ADDRESS selects; byte and word accesses add offset bits 1:0 to the port.</summary>
    public const ushort ConfigDataPort = 0xcfc;

    /// <summary>CONFIG_ADDRESS bit 31: the access goes to configuration space.</summary>
    public const uint ConfigAddressEnable = 0x8000_0000;

    /// <summary>Intel's PCI vendor ID.</summary>
    public const ushort IntelVendorId = 0x8086;

    /// <summary>The MCH (host bridge) at 00:00.0.</summary>
    public static readonly PciFunctionAddress MchAddress = new(0, 0, 0);

    /// <summary>The MCH's device ID as QEMU models it (82G33/P35 "Q35" MCH).</summary>
    public const ushort MchDeviceId = 0x29c0;

    /// <summary>
    /// PCIEXBAR (MCH 0x60-0x67, read/write): the PCI Express register range. Bit 0 PCIEXBAREN, bits 2:1 LENGTH (00 =
    /// 256 buses / 256 MiB), base in bits 35:28 for 256 MiB. 0 at reset: ECAM is off until firmware sets it.
    /// </summary>
    public const int MchPciexbar = 0x60;

    /// <summary>PCIEXBAR bit 0, PCIEXBAREN: the MCH decodes the ECAM range.</summary>
    public const uint PciexbarEnable = 1;

    /// <summary>PCIEXBAR bits 2:1 = 00: LENGTH 256 MiB (buses 0-255).</summary>
    public const uint PciexbarLength256MiB = 0;

    /// <summary>Where the platform places ECAM: 0xB0000000, as SeaBIOS and QEMU's own default value of PCIEXBAR.</summary>
    public const ulong EcamBase = 0xb000_0000;

    /// <summary>The ECAM range's size: 256 buses × 1 MiB.</summary>
    public const ulong EcamSize = 0x1000_0000;

    /// <summary>
    /// The first address of the 32-bit PCI memory window: right after ECAM. Every address the MCH does not claim for
    /// RAM, ECAM or the chipset falls through to PCI, so BARs placed here decode.
    /// </summary>
    public const ulong Memory32WindowBase = EcamBase + EcamSize;

    /// <summary>The IOAPIC's registers (0xFEC00000): the 32-bit window ends below them (then HPET, then the local APIC's MSI range).</summary>
    public const ulong IoapicBase = 0xfec0_0000;

    /// <summary>The I/O window for I/O BARs: ports 0xC000-0xFFFF, as SeaBIOS, clear of the ISA and chipset ports below 0x1000.</summary>
    public const ulong IoWindowBase = 0xc000;

    /// <summary>The I/O window's size (16 KiB of ports).</summary>
    public const ulong IoWindowSize = 0x4000;

    /// <summary>The ICH9 LPC bridge at 00:1f.0, which owns PIRQ routing.</summary>
    public static readonly PciFunctionAddress LpcAddress = new(0, 0x1f, 0);

    /// <summary>The ICH9 LPC bridge's device ID (82801IB).</summary>
    public const ushort LpcDeviceId = 0x2918;

    /// <summary>PIRQA_ROUT..PIRQD_ROUT (LPC 0x60-0x63, read/write, one byte each): where PIRQA-D go on the 8259s.</summary>
    public const int LpcPirqARout = 0x60;

    /// <summary>PIRQE_ROUT..PIRQH_ROUT (LPC 0x68-0x6B, read/write, one byte each).</summary>
    public const int LpcPirqERout = 0x68;

    /// <summary>
    /// PIRQx_ROUT bit 7, IRQEN: when set the PIRQ is not routed to the 8259 (bits 3:0 name an ISA IRQ otherwise). The
    /// reset value 0x80 leaves every PIRQ on the IOAPIC only, at GSI <see cref="PirqGsiBase"/> + n.
    /// </summary>
    public const byte PirqRoutIrqDisable = 0x80;

    /// <summary>The number of PIRQ lines (A-H).</summary>
    public const int PirqCount = 8;

    /// <summary>IOAPIC input of PIRQA: PIRQ A-H are GSI 16-23 in APIC mode, never shared with ISA interrupts.</summary>
    public const int PirqGsiBase = 16;

    /// <summary>The IOAPIC's inputs (GSI 0-23).</summary>
    public const int IoapicInputs = 24;

    /// <summary>The QOM type of QEMU's (TCG) IOAPIC, a child of the q35 host bridge object.</summary>
    public const string IoapicQomType = "ioapic";

    /// <summary>The QOM path of the q35 host bridge object, under which QEMU places the IOAPIC.</summary>
    public const string HostQomPath = "/machine/q35";

    /// <summary>
    /// The first guest-physical address handed out as DMA memory: 2 MiB. Below 1 MiB lie the real-mode area, the
    /// VGA/SMRAM window and the BIOS shadow; the next MiB is left free as a margin.
    /// </summary>
    public const ulong DmaBase = 0x20_0000;

    /// <summary>The I/O window as <see cref="PciEnumerator"/> takes it: on x86 a port number is both the PCI and the CPU address.</summary>
    public static PciWindow IoWindow => new(PciAddressSpace.Io, false, IoWindowBase, IoWindowBase, IoWindowSize);

    /// <summary>The 32-bit memory window: [<see cref="Memory32WindowBase"/>, <see cref="IoapicBase"/>), identity-mapped.</summary>
    public static PciWindow Memory32Window => new(PciAddressSpace.Memory32, false, Memory32WindowBase, Memory32WindowBase, IoapicBase - Memory32WindowBase);

    /// <summary>The PCIEXBAR value that enables 256 MiB of ECAM at <see cref="EcamBase"/>.</summary>
    public static ulong PciexbarValue => EcamBase | PciexbarLength256MiB | PciexbarEnable;

    /// <summary>
    /// The root complex as a <see cref="PciHostBridge"/>: ECAM at <see cref="EcamBase"/> for buses 0-255, the I/O and
    /// 32-bit windows, and no interrupt-map (INTx is routed by <see cref="Q35IntxRouting"/>). Every BAR, 64-bit ones
    /// included, goes below 4 GiB, where no RAM of a machine of at most 2 GiB competes for addresses.
    /// </summary>
    public static PciHostBridge CreateHostBridge() =>
        new("q35 pcie.0", EcamBase, EcamSize, 0, 255, [IoWindow, Memory32Window], 0, 0, []);

    /// <summary>CONFIG_ADDRESS for <paramref name="function"/>'s dword at <paramref name="offset"/> (bits 1:0 ignored).</summary>
    public static uint ConfigAddress(PciFunctionAddress function, int offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, 0xff);
        return ConfigAddressEnable | ((uint)function.Bus << 16) | ((uint)(function.Device & 0x1f) << 11) | ((uint)(function.Function & 7) << 8) | (uint)(offset & 0xfc);
    }
}
