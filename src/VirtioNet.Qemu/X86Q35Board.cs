using H = VirtioNet.Discovery.Pci.PciHeaderRegisters;

namespace VirtioNet.Qemu;

/// <summary>
/// QEMU's x86_64 <c>q35</c> board as firmware and a kernel would see it, without a device tree: the board knows its
/// chipset (<see cref="Q35Chipset"/>), checks it is there, enables PCIe ECAM through the MCH's PCIEXBAR, routes PCI
/// INTx to the IOAPIC only, then enumerates the root bus and places BARs with the same
/// <see cref="PciEnumerator"/> and opens the same virtio-pci transports as riscv64 <c>virt</c>.
/// </summary>
/// <remarks>
/// The driver library stays machine-neutral: everything q35-specific is here and in <see cref="Q35Chipset"/>,
/// <see cref="Q35IntxRouting"/> and <see cref="Q35ParkFirmware"/>. See docs/PCI.md (q35).
/// </remarks>
public sealed partial class X86Q35Board : IQemuBoard
{
    // Serializes CONFIG_ADDRESS/CONFIG_DATA pairs (mechanism #1 is used only at start-up, but two steps per access).
    private readonly Lock _configPortLock = new();

    private X86Q35Board(QemuMachine machine)
    {
        Machine = machine;
        PciHost = Q35Chipset.CreateHostBridge();
    }

    /// <summary>The running QEMU.</summary>
    public QemuMachine Machine { get; }

    /// <summary>Memory the devices can reach: guest RAM from <see cref="Q35Chipset.DmaBase"/>, shared with this process.</summary>
    public IDmaAllocator Dma => Machine.DmaAllocator;

    /// <summary>The root complex: ECAM at <see cref="Q35Chipset.EcamBase"/> (enabled by <see cref="Start"/>), the I/O and 32-bit windows.</summary>
    public PciHostBridge PciHost { get; }

    /// <summary>
    /// Starts a q35 machine (<paramref name="options"/> with <see cref="QemuMachineOptions.Machine"/> set to
    /// <see cref="QemuMachineKind.X86Q35"/>) and brings up its chipset: ECAM on, PIRQs on the IOAPIC only. QEMU is
    /// stopped again if anything fails.
    /// </summary>
    /// <exception cref="VirtioException">
    /// With <see cref="VirtioErrorReason.NoDevice"/> when the chipset is not the one expected, or
    /// <see cref="VirtioErrorReason.PlatformFailure"/> when ECAM does not appear where PCIEXBAR put it.
    /// </exception>
    public static X86Q35Board Start(QemuMachineOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return BringUp(QemuMachine.Start(options with { Machine = QemuMachineKind.X86Q35 }, cancellationToken));
    }

    /// <summary>
    /// Drives a q35 machine started earlier with <see cref="QemuMachine.Launch"/> (<paramref name="options"/> as it was
    /// launched with): the chipset set up again as at <see cref="Start"/> (the same values, so a second time changes
    /// nothing); the net device is reset when it is opened. Disposing the board leaves QEMU running.
    /// </summary>
    public static X86Q35Board Attach(QemuMachineOptions options, DetachedQemuMachine detached, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return BringUp(QemuMachine.Attach(options with { Machine = QemuMachineKind.X86Q35 }, detached, cancellationToken));
    }

    private static X86Q35Board BringUp(QemuMachine machine)
    {
        try
        {
            var board = new X86Q35Board(machine);
            board.InitializeChipset();
            return board;
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Brings up the first virtio network function (see <see cref="OpenPciNetDevice"/>). q35 has no virtio-mmio slots,
    /// so <paramref name="baseAddress"/> must be null.
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NoDevice"/> when a base address is given.</exception>
    public VirtioNetDevice OpenNetDevice(ulong? baseAddress, VirtioNetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (baseAddress is { } address)
        {
            throw new VirtioException(VirtioErrorReason.NoDevice, $"x86_64 q35 has no virtio-mmio slots: nothing to drive at 0x{address:x}.");
        }

        return OpenPciNetDevice(options);
    }

    /// <summary>Sets the net device's link through the QEMU monitor (<c>set_link</c>).</summary>
    public void SetLink(bool up) => Machine.Monitor.SetLink(QemuMachine.NetDeviceId, up);

    /// <summary>Stops QEMU and removes its shared memory.</summary>
    public void Dispose() => Machine.Dispose();

    /// <inheritdoc />
    public override string ToString() => $"{Machine}, ECAM 0x{Q35Chipset.EcamBase:x}";

    /// <summary>
    /// <paramref name="function"/>'s configuration space through mechanism #1 (ports 0xCF8/0xCFC): the first 256 bytes,
    /// reachable before ECAM is enabled.
    /// </summary>
    public IRegisterWindow OpenConfigPortWindow(PciFunctionAddress function) =>
        new Q35ConfigPortWindow(Machine.Qtest, function, _configPortLock);

    // What firmware does first on q35: find the chipset, turn on ECAM, decide the INTx routing.
    private void InitializeChipset()
    {
        IRegisterWindow mch = OpenConfigPortWindow(Q35Chipset.MchAddress);
        ExpectIdentity(mch, Q35Chipset.MchAddress, Q35Chipset.MchDeviceId, "MCH (host bridge)");

        // High dword first, so the range never decodes at a half-written base.
        mch.Write32(Q35Chipset.MchPciexbar + 4, (uint)(Q35Chipset.PciexbarValue >> 32));
        mch.Write32(Q35Chipset.MchPciexbar, (uint)Q35Chipset.PciexbarValue);
        ulong pciexbar = mch.Read64(Q35Chipset.MchPciexbar);
        if (pciexbar != Q35Chipset.PciexbarValue)
        {
            throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"PCIEXBAR reads back 0x{pciexbar:x} after 0x{Q35Chipset.PciexbarValue:x} was written: the MCH does not accept this ECAM placement.");
        }

        // The same function seen through ECAM proves the window decodes.
        IRegisterWindow ecamMch = Machine.OpenRegisterWindow(PciHost.GetConfigAddress(Q35Chipset.MchAddress), H.ExtendedConfigSpaceSize);
        uint throughEcam = ecamMch.Read32(H.VendorId);
        uint throughPorts = mch.Read32(H.VendorId);
        if (throughEcam != throughPorts)
        {
            throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"ECAM at 0x{Q35Chipset.EcamBase:x} reads 0x{throughEcam:x8} for 00:00.0, where the configuration ports read 0x{throughPorts:x8}: PCIEXBAR did not take effect.");
        }

        IRegisterWindow lpc = Machine.OpenRegisterWindow(PciHost.GetConfigAddress(Q35Chipset.LpcAddress), H.ExtendedConfigSpaceSize);
        ExpectIdentity(lpc, Q35Chipset.LpcAddress, Q35Chipset.LpcDeviceId, "ICH9 LPC bridge");
        for (int i = 0; i < 4; i++)
        {
            lpc.Write8((ulong)(Q35Chipset.LpcPirqARout + i), Q35Chipset.PirqRoutIrqDisable);
            lpc.Write8((ulong)(Q35Chipset.LpcPirqERout + i), Q35Chipset.PirqRoutIrqDisable);
        }
    }

    private static void ExpectIdentity(IRegisterWindow config, PciFunctionAddress address, ushort deviceId, string what)
    {
        ushort vendor = config.Read16(H.VendorId);
        ushort device = config.Read16(H.DeviceId);
        if (vendor != Q35Chipset.IntelVendorId || device != deviceId)
        {
            throw new VirtioException(
                VirtioErrorReason.NoDevice,
                $"Unable to find the q35 {what} ({Q35Chipset.IntelVendorId:x4}:{deviceId:x4}) at {address}. Found {vendor:x4}:{device:x4}: is this QEMU's q35 machine?");
        }
    }
}
