using VirtioNet.Discovery;
using VirtioNet.Transports.Mmio;

namespace VirtioNet.Qemu;

/// <summary>
/// QEMU's riscv64 <c>virt</c> board as a kernel would see it: the machine started, the device tree read from where
/// firmware hands it over and walked for virtio-mmio slots, and each slot opened as a transport with its PLIC line.
/// This is where the platform meets the driver library: discovery and transports come from the library, registers,
/// interrupts and DMA memory from <see cref="QemuMachine"/>.
/// </summary>
public sealed partial class RiscvVirtBoard : IQemuBoard
{
    private RiscvVirtBoard(QemuMachine machine, FlattenedDeviceTree deviceTree, IReadOnlyList<VirtioMmioSlot> slots)
    {
        Machine = machine;
        DeviceTree = deviceTree;
        Slots = slots;
    }

    /// <summary>The running QEMU.</summary>
    public QemuMachine Machine { get; }

    /// <summary>The device tree QEMU generated for the board.</summary>
    public FlattenedDeviceTree DeviceTree { get; }

    /// <summary>Every virtio-mmio slot the device tree describes, by base address.</summary>
    public IReadOnlyList<VirtioMmioSlot> Slots { get; }

    /// <summary>Memory the devices can reach: guest RAM shared with this process.</summary>
    public IDmaAllocator Dma => Machine.DmaAllocator;

    /// <summary>Starts QEMU and discovers the virtio-mmio slots. QEMU is stopped again if discovery fails.</summary>
    public static RiscvVirtBoard Start(QemuMachineOptions options, CancellationToken cancellationToken = default) =>
        Discover(QemuMachine.Start(options, cancellationToken));

    /// <summary>
    /// Drives a machine started earlier with <see cref="QemuMachine.Launch"/> (<paramref name="options"/> as it was launched
    /// with), as a kernel booting on it would: the device tree read again and every virtio-mmio network device reset
    /// (status 0), so the rings of a driver that died are forgotten before anything is written to guest RAM. Disposing the
    /// board leaves QEMU running.
    /// </summary>
    public static RiscvVirtBoard Attach(QemuMachineOptions options, DetachedQemuMachine detached, CancellationToken cancellationToken = default)
    {
        RiscvVirtBoard board = Discover(QemuMachine.Attach(options, detached, cancellationToken));
        try
        {
            foreach (VirtioMmioSlot slot in board.Slots)
            {
                var transport = new VirtioMmioTransport(board.Machine.OpenRegisterWindow(slot.BaseAddress, slot.Length), slot.BaseAddress, null);
                if (transport.DeviceId == VirtioDeviceTypes.Network)
                {
                    VirtioDeviceInitializer.Reset(transport);
                }
            }

            return board;
        }
        catch
        {
            board.Dispose();
            throw;
        }
    }

    private static RiscvVirtBoard Discover(QemuMachine machine)
    {
        try
        {
            FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(machine.ReadDeviceTree());
            IReadOnlyList<VirtioMmioSlot> slots = VirtioMmioDiscovery.Find(tree);
            if (slots.Count == 0)
            {
                throw new VirtioException(VirtioErrorReason.MalformedDescription, "The device tree describes no virtio,mmio node.");
            }

            return new RiscvVirtBoard(machine, tree, slots);
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the transport of <paramref name="slot"/>; with <paramref name="withInterrupt"/> its PLIC line is
    /// intercepted so the driver can wait on it.
    /// </summary>
    public VirtioMmioTransport OpenTransport(VirtioMmioSlot slot, bool withInterrupt)
    {
        ArgumentNullException.ThrowIfNull(slot);
        IRegisterWindow window = Machine.OpenRegisterWindow(slot.BaseAddress, slot.Length);
        IInterruptLine? line = withInterrupt ? Machine.OpenPlicLine((int)slot.Interrupt) : null;
        return new VirtioMmioTransport(window, slot.BaseAddress, line);
    }

    /// <summary>
    /// Brings up the net device at <paramref name="baseAddress"/>, or the first slot holding a network device when null.
    /// </summary>
    public VirtioNetDevice OpenNetDevice(ulong? baseAddress, VirtioNetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (Machine.Options.NetDeviceModel != QemuNetDeviceModel.VirtioMmio && baseAddress is null)
        {
            // The net device is a PCI function (RiscvVirtBoard.Pci.cs).
            return OpenPciNetDevice(options);
        }

        VirtioMmioSlot slot = baseAddress is { } address
            ? Slots.FirstOrDefault(s => s.BaseAddress == address)
                ?? throw new VirtioException(VirtioErrorReason.NoDevice, $"The device tree has no virtio-mmio slot at 0x{address:x} (slots: {string.Join(", ", Slots.Select(s => $"0x{s.BaseAddress:x}"))}).")
            : FindFirstNetSlot();
        VirtioMmioTransport transport = OpenTransport(slot, options.OperationMode != OperationMode.Poll);
        return VirtioNetDevice.Open(transport, Dma, options);
    }

    /// <summary>Sets the net device's link through the QEMU monitor (<c>set_link</c>).</summary>
    public void SetLink(bool up) => Machine.Monitor.SetLink(QemuMachine.NetDeviceId, up);

    /// <summary>Stops QEMU and removes its shared memory.</summary>
    public void Dispose() => Machine.Dispose();

    private VirtioMmioSlot FindFirstNetSlot()
    {
        foreach (VirtioMmioSlot slot in Slots)
        {
            var transport = new VirtioMmioTransport(Machine.OpenRegisterWindow(slot.BaseAddress, slot.Length), slot.BaseAddress, null);
            if (transport.DeviceId == VirtioDeviceTypes.Network)
            {
                return slot;
            }
        }

        throw new VirtioException(VirtioErrorReason.NoDevice, $"None of the {Slots.Count} virtio-mmio slots holds a network device.");
    }
}
