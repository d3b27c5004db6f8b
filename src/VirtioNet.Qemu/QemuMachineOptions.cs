namespace VirtioNet.Qemu;

/// <summary>
/// How to start a QEMU riscv64 <c>virt</c> (or x86_64 <c>q35</c>) machine for the driver to drive over qtest. Every property is checked
/// when it is set, so a bad value fails where it is written rather than as a QEMU error later.
/// </summary>
public sealed record QemuMachineOptions
{
    /// <summary>The smallest guest RAM accepted: room for the park program, the device tree and some DMA memory.</summary>
    public const int MinimumMemoryMiB = 16;

    /// <summary>The largest guest RAM accepted: the whole of it is a file in /dev/shm (tmpfs), mapped by this process.</summary>
    public const int MaximumMemoryMiB = 8192;

    /// <summary>
    /// The largest guest RAM accepted on q35: below 2.75 GiB QEMU places all of it at guest-physical 0 (above, it
    /// splits RAM around the PCI hole, which one contiguous mapping cannot describe).
    /// </summary>
    public const int MaximumQ35MemoryMiB = 2048;

    /// <summary>virtio-mmio slots on riscv64 <c>virt</c>: 0x10001000 ... 0x10008000.</summary>
    public const int MmioSlotCount = 8;

    /// <summary>
    /// Which machine to start. Default <see cref="QemuMachineKind.RiscvVirt"/>.
    /// <see cref="QemuMachineKind.X86Q35"/> accepts only the virtio-net-pci models and at most
    /// <see cref="MaximumQ35MemoryMiB"/> of RAM.
    /// </summary>
    public QemuMachineKind Machine { get; init; } = QemuMachineKind.RiscvVirt;

    /// <summary>
    /// The QEMU binary: a name looked up on PATH, or a path. Default: the machine's own binary,
    /// <c>qemu-system-riscv64</c> (Debian package qemu-system-misc) or <c>qemu-system-x86_64</c> (qemu-system-x86).
    /// </summary>
    public string QemuPath
    {
        get => field ?? DefaultQemuPath(Machine);
        init
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(value, nameof(QemuPath));
            field = value;
        }
    }

    /// <summary>The binary a machine kind runs when <see cref="QemuPath"/> is not set.</summary>
    public static string DefaultQemuPath(QemuMachineKind machine) =>
        machine == QemuMachineKind.X86Q35 ? "qemu-system-x86_64" : "qemu-system-riscv64";

    /// <summary>Guest RAM in MiB. Default 256: enough for rings and buffer pools, small enough for /dev/shm on a CI machine.</summary>
    public int MemoryMiB
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, MinimumMemoryMiB, nameof(MemoryMiB));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MaximumMemoryMiB, nameof(MemoryMiB));
            field = value;
        }
    } = 256;

    /// <summary>
    /// True for virtio-mmio version 2 (virtio 1.x, <c>-global virtio-mmio.force-legacy=false</c>); false (the default,
    /// as QEMU's own default) for the legacy version 1 register layout.
    /// </summary>
    public bool ModernMmio { get; init; }

    /// <summary>
    /// The <c>-netdev</c> argument. It must name an <c>id=</c>, which the net device is attached to.
    /// Default <c>user,id=n0</c>: QEMU's user network (gateway 10.0.2.2, DHCP hands out 10.0.2.15), no root needed.
    /// </summary>
    public string Netdev
    {
        get;
        init
        {
            ValidateArgument(value, nameof(Netdev), allowEmpty: false);
            if (ParseNetdevId(value) is null)
            {
                throw new ArgumentException($"The -netdev argument '{value}' names no id= for the net device to attach to.", nameof(Netdev));
            }

            field = value;
        }
    } = "user,id=n0";

    /// <summary>
    /// The net device's model: virtio-mmio (the default), or a virtio-net-pci function that is
    /// modern-only, transitional or legacy-only. The PCI models land at 00:01.0 on the <c>virt</c> host bridge.
    /// </summary>
    public QemuNetDeviceModel NetDeviceModel { get; init; } = QemuNetDeviceModel.VirtioMmio;

    /// <summary>
    /// Extra properties appended to <c>-device virtio-net-device,netdev=ID,id=net0</c>, comma-separated,
    /// e.g. <c>mrg_rxbuf=off,event_idx=off</c>. Default empty.
    /// </summary>
    public string NetDeviceProperties
    {
        get;
        init
        {
            ValidateArgument(value, nameof(NetDeviceProperties), allowEmpty: true);
            field = value.Trim(',');
        }
    } = string.Empty;

    /// <summary>
    /// How many other virtio-mmio devices (virtio-rng-device) to place before the net device, 0..7. QEMU fills the
    /// slots from the top: with 0 the net device is at 0x10008000 (PLIC line 8), with k it is at 0x10008000 - k·0x1000
    /// (line 8 - k). Default 0.
    /// </summary>
    public int DevicesBeforeNet
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(DevicesBeforeNet));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, MmioSlotCount - 1, nameof(DevicesBeforeNet));
            field = value;
        }
    }

    /// <summary>More QEMU arguments, appended as given (one argument per element, no shell quoting). Default none.</summary>
    public IReadOnlyList<string> ExtraArguments
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(ExtraArguments));
            foreach (string argument in value)
            {
                ArgumentNullException.ThrowIfNull(argument, nameof(ExtraArguments));
                if (argument.Contains('\0', StringComparison.Ordinal))
                {
                    throw new ArgumentException("A QEMU argument contains a NUL character.", nameof(ExtraArguments));
                }
            }

            field = [.. value];
        }
    } = [];

    /// <summary>
    /// How long QEMU may take from launch to its first qtest reply (connecting, creating the machine). Default 20 s:
    /// QEMU needs well under a second, but a loaded 2-core CI machine running tests in parallel can be slow.
    /// </summary>
    public TimeSpan StartTimeout
    {
        get;
        init => field = Positive(value, nameof(StartTimeout));
    } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// How long one qtest or QMP command may wait for its reply before QEMU counts as unresponsive. Default 10 s:
    /// a reply normally takes under 100 µs, so only a hung or stopped QEMU gets near it.
    /// </summary>
    public TimeSpan CommandTimeout
    {
        get;
        init => field = Positive(value, nameof(CommandTimeout));
    } = TimeSpan.FromSeconds(10);

    /// <summary>The <c>id=</c> of <see cref="Netdev"/>, which the net device's <c>netdev=</c> names.</summary>
    public string NetdevId => ParseNetdevId(Netdev)!;

    /// <summary>The virtio-mmio slot (0 = 0x10001000 ... 7 = 0x10008000) the net device lands in.</summary>
    public int NetSlot => MmioSlotCount - 1 - DevicesBeforeNet;

    private static string? ParseNetdevId(string netdev)
    {
        foreach (string part in netdev.Split(','))
        {
            if (part.StartsWith("id=", StringComparison.Ordinal) && part.Length > 3)
            {
                return part[3..];
            }
        }

        return null;
    }

    private static TimeSpan Positive(TimeSpan value, string name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero, name);
        return value;
    }

    // QEMU takes each as one argv element: white space would be part of the value, not a separator, and is never meant.
    private static void ValidateArgument(string value, string name, bool allowEmpty)
    {
        ArgumentNullException.ThrowIfNull(value, name);
        if (!allowEmpty && value.Length == 0)
        {
            throw new ArgumentException($"{name} must not be empty.", name);
        }

        foreach (char c in value)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c))
            {
                throw new ArgumentException($"{name} '{value}' contains white space or a control character; QEMU properties are comma-separated.", name);
            }
        }
    }
}
