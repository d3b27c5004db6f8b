namespace VirtioNet.Qemu;

/// <summary>
/// Which QEMU machine a <see cref="QemuMachine"/> is: the binary, the <c>-machine</c> string, where RAM starts, the
/// program that parks the guest CPU and the interrupt controller whose inputs are intercepted all follow from it.
/// </summary>
public enum QemuMachineKind
{
    /// <summary>
    /// <c>qemu-system-riscv64 -machine virt</c> (the default): RAM at 0x80000000, a device tree, virtio-mmio slots and
    /// a generic ECAM PCIe host, interrupts through the PLIC.
    /// </summary>
    RiscvVirt,

    /// <summary>
    /// <c>qemu-system-x86_64 -machine q35</c>: RAM at 0, no device tree; the MCH (00:00.0) and ICH9 LPC (00:1f.0)
    /// chipset, PCIe ECAM placed through PCIEXBAR, PCI INTx through the IOAPIC. Only virtio-net-pci devices.
    /// </summary>
    X86Q35,
}
