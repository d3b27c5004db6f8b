namespace VirtioNet.Discovery;

/// <summary>
/// A virtio-mmio register window described by the device tree (a node compatible with "virtio,mmio"). The slot may be
/// empty: whether a device sits behind it is read from its DeviceID register. Ref: virtio v1.2 §4.2.
/// </summary>
/// <param name="NodePath">The node's full path, e.g. "/soc/virtio_mmio@10008000".</param>
/// <param name="BaseAddress">The CPU physical address of the register window (the first <c>reg</c> entry, translated through the parents' <c>ranges</c>).</param>
/// <param name="Length">The size of the register window in bytes (0x1000 on QEMU's virt machines).</param>
/// <param name="Interrupt">
/// The first cell of the node's first interrupt specifier: on riscv64 virt the PLIC source number (1 to 8 for the eight slots).
/// </param>
/// <param name="InterruptControllerPath">The full path of the interrupt parent, e.g. "/soc/plic@c000000".</param>
/// <param name="InterruptControllerCompatible">
/// The interrupt parent's most specific <c>compatible</c> string (e.g. "sifive,plic-1.0.0"); empty when it has none.
/// </param>
public sealed record VirtioMmioSlot(
    string NodePath,
    ulong BaseAddress,
    ulong Length,
    uint Interrupt,
    string InterruptControllerPath,
    string InterruptControllerCompatible);
