namespace VirtioNet.Qemu;

/// <summary>
/// How a PCI function's INTx pin on q35's root bus reaches the IOAPIC: device and pin select one of PIRQ A-H (the
/// board's wiring, which QEMU's ACPI _PRT describes to a guest), and PIRQ n is IOAPIC input 16 + n. Pure arithmetic.
/// </summary>
/// <remarks>
/// <para>QEMU wires plug-in slots 0-24 as INTA-D of slot s → PIRQ E + ((s + pin - 1) mod 4): PIRQ A-D are kept for
/// PCIe root ports. The chipset's own devices 25-31 follow the ICH9 DxxIR registers, whose reset value connects
/// INTA-D to PIRQ A-D (D30, the DMI-to-PCI bridge, to PIRQ E-H). Ref: ICH9 datasheet §10.1.x (DxxIR); QEMU
/// hw/isa/lpc_ich9.c.</para>
/// <para>Only the IOAPIC path is used: the board writes 0x80 (IRQEN, "not routed") to every PIRQx_ROUT, so no PIRQ
/// also drives an 8259 input (QEMU's reset value, written again so the routing is the board's decision, not an
/// accident).</para>
/// </remarks>
public static class Q35IntxRouting
{
    /// <summary>The PIRQ (0 = A ... 7 = H) that <paramref name="device"/>'s pin <paramref name="pin"/> (1 = INTA# ... 4 = INTD#) drives on the root bus.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the device is not 0-31 or the pin not 1-4.</exception>
    public static int PirqOf(int device, int pin)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(device);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(device, 31);
        ArgumentOutOfRangeException.ThrowIfLessThan(pin, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pin, 4);
        int intx = pin - 1;
        return device switch
        {
            30 => intx + 4,
            >= 25 => intx,
            _ => ((device + intx) % 4) + 4,
        };
    }

    /// <summary>The IOAPIC input (GSI) of PIRQ <paramref name="pirq"/>.</summary>
    public static int GsiOfPirq(int pirq)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pirq);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pirq, Q35Chipset.PirqCount);
        return Q35Chipset.PirqGsiBase + pirq;
    }

    /// <summary>The IOAPIC input <paramref name="device"/>'s pin <paramref name="pin"/> raises.</summary>
    public static int GsiOf(int device, int pin) => GsiOfPirq(PirqOf(device, pin));

    /// <summary>The PIRQ's letter, for messages: 0 → "PIRQA".</summary>
    public static string PirqName(int pirq) => "PIRQ" + (char)('A' + pirq);
}
