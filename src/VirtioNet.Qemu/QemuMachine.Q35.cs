namespace VirtioNet.Qemu;

/// <summary>
/// The x86_64 <c>q35</c> machine. Same process lifecycle, qtest and QMP connections and shared RAM as
/// riscv64 <c>virt</c>; what differs is gathered here: the command line (q35, the park firmware as <c>-bios</c>), RAM
/// at guest-physical 0, the DMA range, and the IOAPIC as the intercepted interrupt controller.
/// </summary>
public sealed partial class QemuMachine
{
    /// <summary>
    /// The IOAPIC input <paramref name="gsi"/> (0-23) as an interrupt line. The first call finds the IOAPIC by its QOM
    /// type under the q35 host object (QMP <c>qom-list</c>) and intercepts its inputs, after which every device
    /// interrupt is reported to this process instead of the parked CPU. Only on <see cref="QemuMachineKind.X86Q35"/>.
    /// </summary>
    public IInterruptLine OpenIoapicLine(int gsi)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gsi);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(gsi, Q35Chipset.IoapicInputs);
        ThrowIfDisposed();
        if (Options.Machine != QemuMachineKind.X86Q35)
        {
            throw new InvalidOperationException($"An IOAPIC exists on x86_64 q35 only; this machine is {Options.Machine}.");
        }

        // The same one-time interception as the PLIC's: QEMU intercepts one device's inputs per process.
        lock (_plicLock)
        {
            if (_plicPath is null)
            {
                string path = FindIoapic();
                Qtest.IrqInterceptIn(path);
                Qtest.InterruptControllerName = "IOAPIC";
                _plicPath = path;
            }
        }

        return Qtest.GetInterruptLine(gsi);
    }

    /// <summary>A range of the x86 I/O port space as a register window (an I/O BAR), accessed with qtest <c>in</c>/<c>out</c>.</summary>
    public IRegisterWindow OpenPortWindow(ulong portBase, ulong length)
    {
        ThrowIfDisposed();
        return new QtestPortWindow(Qtest, portBase, length);
    }

    private static void ValidateForMachine(QemuMachineOptions options)
    {
        if (options.Machine != QemuMachineKind.X86Q35)
        {
            return;
        }

        if (options.NetDeviceModel == QemuNetDeviceModel.VirtioMmio)
        {
            throw new ArgumentException("x86_64 q35 has no virtio-mmio slots: choose a virtio-net-pci model (NetDeviceModel).", nameof(options));
        }

        if (options.MemoryMiB > QemuMachineOptions.MaximumQ35MemoryMiB)
        {
            throw new ArgumentException(
                $"x86_64 q35 takes at most {QemuMachineOptions.MaximumQ35MemoryMiB} MiB here (QEMU splits larger RAM around the PCI hole); got {options.MemoryMiB}.",
                nameof(options));
        }

        if (options.DevicesBeforeNet != 0 || options.ModernMmio)
        {
            throw new ArgumentException("DevicesBeforeNet and ModernMmio describe virtio-mmio slots, which x86_64 q35 does not have.", nameof(options));
        }
    }

    private List<string> BuildQ35Arguments(string qemu, string firmware, string qtestSocket, string qmpSocket)
    {
        List<string> arguments =
        [
            "--pdeathsig", "KILL", "--", qemu,
            "-machine", "q35,memory-backend=mem",
            "-object", FormattableString.Invariant($"memory-backend-file,id=mem,size={Options.MemoryMiB}M,mem-path={_shmPath},share=on"),

            // The park firmware is the whole BIOS: the CPU halts at the reset vector (Q35ParkFirmware).
            "-bios", firmware,
            "-qtest", "unix:" + qtestSocket,
            "-qtest-log", "/dev/null",
            "-qmp", "unix:" + qmpSocket,
            "-display", "none",
            "-nodefaults",
        ];

        // Without addr= QEMU puts the function in the first free slot of pcie.0: 00:01.0 (-nodefaults leaves out VGA).
        AddNetDeviceArguments(arguments);
        return arguments;
    }

    // The first qtest reply means the machine exists (RAM file created, firmware mapped, reset done). Reading the reset
    // vector both waits for that and proves the CPU is parked: the bytes there must be the park program.
    private void ConnectQ35(TimeSpan firstReplyTimeout, CancellationToken cancellationToken)
    {
        ulong resetVector = _qtest!.ReadQ(Q35ParkFirmware.ResetVector, firstReplyTimeout);
        cancellationToken.ThrowIfCancellationRequested();

        ulong ramSize = (ulong)Options.MemoryMiB * 1024 * 1024;
        _ram = GuestRam.Map(_shmPath!, 0, ramSize);
        ReleaseFiles();

        _monitor!.Handshake();

        ReadOnlySpan<byte> park = Q35ParkFirmware.ParkProgram;
        ulong expected = park[0] | ((ulong)park[1] << 8) | ((ulong)park[2] << 16);
        if ((resetVector & 0xff_ffff) != expected)
        {
            throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"The reset vector 0x{Q35ParkFirmware.ResetVector:x} holds 0x{resetVector:x16}, not the park program: QEMU did not load the -bios image, so the CPU is not parked.");
        }

        // Nothing but this process writes RAM above 1 MiB on a machine without firmware (SMRAM/TSEG stays closed:
        // only firmware opens it); the top MiB is kept free as on riscv, as a margin.
        const ulong MiB = 1024 * 1024;
        _allocator = new GuestRamAllocator(_ram, Q35Chipset.DmaBase, ramSize - MiB);
    }

    private string FindIoapic()
    {
        foreach (string container in new[] { Q35Chipset.HostQomPath, "/machine/unattached", "/machine" })
        {
            foreach (QomProperty child in Monitor.QomList(container))
            {
                if (child.IsChildOfType(Q35Chipset.IoapicQomType))
                {
                    return $"{container}/{child.Name}";
                }
            }
        }

        throw new VirtioException(
            VirtioErrorReason.PlatformFailure,
            $"No child of type {Q35Chipset.IoapicQomType} under {Q35Chipset.HostQomPath}, /machine/unattached or /machine: is this an x86_64 q35 machine without KVM?");
    }
}
