using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace VirtioNet.Qemu;

/// <summary>
/// A QEMU riscv64 <c>virt</c> machine used as the driver's platform: this process plays the guest CPU through
/// qtest (device registers, the boot ROM, PLIC interrupt lines), and shares the guest's RAM through a /dev/shm file
/// mapped into this process, so rings and packet buffers are written in place as a guest would write them.
/// With <see cref="QemuMachineOptions.Machine"/> = <see cref="QemuMachineKind.X86Q35"/> it is an x86_64
/// <c>q35</c> machine instead (RAM at 0, IOAPIC, a park firmware as BIOS): see QemuMachine.Q35.cs.
/// </summary>
/// <remarks>
/// <para>The traps this type handles, each verified on QEMU 7.2 (see docs/DESIGN.md):</para>
/// <list type="bullet">
/// <item><description><b>Parked CPU.</b> This QEMU has no qtest accelerator, so under <c>-qtest</c> the guest CPU really
/// runs (TCG); with the default firmware it runs OpenSBI and wanders off, possibly touching devices. It is booted with
/// <c>-bios none -kernel PARK</c> instead, PARK being the 8 bytes <c>wfi; j .-4</c> at 0x80000000, which it never
/// leaves (no interrupt reaches it: the PLIC's inputs are intercepted). <c>-S</c> is no alternative: with the VM
/// stopped, virtio-net neither sends nor receives. DMA memory therefore starts above the park program.</description></item>
/// <item><description><b>Orphaned QEMU.</b> QEMU does not exit when its qtest client goes away. It runs under
/// <c>setpriv --pdeathsig KILL</c>, started from a thread that lives as long as QEMU (the kernel's "parent" is the
/// forking thread), so the kernel kills it if this process dies; <see cref="Dispose"/> kills it otherwise, also on
/// <see cref="AppDomain.ProcessExit"/>.</description></item>
/// <item><description><b>Late RAM file.</b> QEMU connects to the qtest socket before it creates guest RAM, so the
/// /dev/shm file exists only once QEMU has answered a first qtest command (the reply comes from the main loop, after
/// machine creation). The file is mapped after that reply, then unlinked at once: both mappings keep the pages, and
/// no file is left behind even if this process is killed. The temporary directory (sockets, PARK) is removed at the
/// same point for the same reason.</description></item>
/// <item><description><b>Malformed qtest commands abort QEMU</b> (an assertion): only <see cref="QtestClient"/>'s typed
/// methods build commands.</description></item>
/// </list>
/// </remarks>
public sealed partial class QemuMachine : IDisposable
{
    /// <summary>Guest-physical address of the first byte of RAM on riscv64 <c>virt</c>.</summary>
    public const ulong RamBase = 0x8000_0000;

    /// <summary>The first guest-physical address handed out as DMA memory: 1 MiB above the park program.</summary>
    public const ulong DmaBase = RamBase + 0x10_0000;

    /// <summary>
    /// The boot ROM word that holds the device tree's address (0x1000 + 32), as the ROM hands it to a kernel in a1
    /// (the word at 0x1000 + 24 is the kernel entry).
    /// </summary>
    public const ulong BootRomDeviceTreePointer = 0x1000 + 32;

    /// <summary>Guest-physical address of virtio-mmio slot 0; slot k is at this + k·<see cref="VirtioMmioStride"/>.</summary>
    public const ulong VirtioMmioBase = 0x1000_1000;

    /// <summary>Distance between virtio-mmio slots, and the size of each register window.</summary>
    public const ulong VirtioMmioStride = 0x1000;

    /// <summary>The QOM type of the riscv <c>virt</c> interrupt controller.</summary>
    public const string PlicQomType = "riscv.sifive.plic";

    /// <summary>The id given to the virtio-net device, for QMP commands such as <c>set_link</c>.</summary>
    public const string NetDeviceId = "net0";

    /// <summary>The largest device tree <see cref="ReadDeviceTree"/> accepts (QEMU's is about 8 KiB).</summary>
    public const int MaxDeviceTreeSize = 2 * 1024 * 1024;

    // wfi; j .-4 (RV64: 0x10500073, 0xffdff06f, little-endian): the guest CPU's whole program.
    private static readonly byte[] ParkProgram = [0x73, 0x00, 0x50, 0x10, 0x6f, 0xf0, 0xdf, 0xff];

    // Makes shm file names unique within this process; the pid and a random part make them unique across processes.
    private static int s_instanceCounter;

    // Guards the one-time PLIC interception.
    private readonly Lock _plicLock = new();

    // Registered with AppDomain.ProcessExit so that an exiting process still stops QEMU.
    private readonly EventHandler _onProcessExit;

    // Private directory holding the sockets and PARK until the machine runs.
    private string? _tempDirectory;

    // /dev/shm/vnet-*: QEMU's RAM backing file, until it is mapped and unlinked.
    private string? _shmPath;

    // The listening sockets QEMU connects to (closed once it has).
    private Socket? _qtestListener;
    private Socket? _qmpListener;

    // QEMU itself.
    private QemuProcess? _process;

    // Protocol clients and RAM; null until Start gets that far.
    private QtestClient? _qtest;
    private QemuMonitor? _monitor;
    private GuestRam? _ram;
    private GuestRamAllocator? _allocator;

    // The PLIC's QOM path, once interception is on.
    private string? _plicPath;

    // 1 once Dispose has begun.
    private int _disposed;

    private QemuMachine(QemuMachineOptions options)
    {
        Options = options;
        _onProcessExit = (_, _) => DisposeCore(processExiting: true);
        AppDomain.CurrentDomain.ProcessExit += _onProcessExit;
    }

    /// <summary>The options the machine was started with.</summary>
    public QemuMachineOptions Options { get; }

    /// <summary>QEMU's command line, for logs and diagnostics.</summary>
    public string CommandLine { get; private set; } = string.Empty;

    /// <summary>QEMU's process id.</summary>
    public int ProcessId => _process?.Id ?? _detached?.ProcessId ?? 0;

    /// <summary>True once QEMU has exited (killed by <see cref="Dispose"/>, crashed, or killed from outside).</summary>
    public bool HasExited => _process?.HasExited ?? (_detached is null || !IsRunning(_detached));

    /// <summary>The qtest connection: register and memory access, interrupt interception.</summary>
    public QtestClient Qtest => _qtest ?? throw NotStarted();

    /// <summary>The QMP connection: link state, QOM queries.</summary>
    public QemuMonitor Monitor => _monitor ?? throw NotStarted();

    /// <summary>The guest's RAM, mapped into this process.</summary>
    public GuestRam GuestRam => _ram ?? throw NotStarted();

    /// <summary>
    /// DMA memory: a <see cref="GuestRamAllocator"/> over guest RAM from <see cref="DmaBase"/> up to 1 MiB below the
    /// device tree, so neither the park program nor the device tree is ever handed out.
    /// </summary>
    public IDmaAllocator DmaAllocator => _allocator ?? throw NotStarted();

    /// <summary>The <c>id=</c> of the netdev (backend) the net device is attached to.</summary>
    public string NetdevId => Options.NetdevId;

    /// <summary>The guest-physical base of the net device's virtio-mmio register window.</summary>
    public ulong NetDeviceBase => VirtioMmioBase + ((ulong)Options.NetSlot * VirtioMmioStride);

    /// <summary>The PLIC source the net device raises: slot k raises line k + 1 (the device tree's <c>interrupts</c>).</summary>
    public int NetDevicePlicLine => Options.NetSlot + 1;

    /// <summary>The PLIC's QOM path once <see cref="OpenPlicLine"/> has intercepted it, else null.</summary>
    public string? PlicQomPath => _plicPath;

    /// <summary>
    /// Starts QEMU and connects to it: returns once QEMU has answered over qtest and QMP and guest RAM is mapped.
    /// On any failure everything started so far is undone (no process, socket or /dev/shm file remains).
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.PlatformFailure"/> when QEMU or setpriv is missing or QEMU exits during start-up
    /// (the message quotes its stderr), <see cref="VirtioErrorReason.Timeout"/> when it does not answer in
    /// <see cref="QemuMachineOptions.StartTimeout"/>.
    /// </exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public static QemuMachine Start(QemuMachineOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);

        // x86_64 q35: the options a q35 machine cannot honour fail here, before anything starts (QemuMachine.Q35.cs).
        ValidateForMachine(options);
        string qemu = RequireQemu(options);
        string setpriv = ResolveExecutable("setpriv")
            ?? throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                "setpriv not found on PATH: it makes the kernel kill QEMU if this process dies. Install it with: apt-get install util-linux");
        if (!Directory.Exists("/dev/shm"))
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, "/dev/shm does not exist: guest RAM is shared through a file there.");
        }

        var machine = new QemuMachine(options);
        try
        {
            machine.Boot(qemu, setpriv, cancellationToken);
            return machine;
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>A register window of <paramref name="length"/> bytes at guest-physical <paramref name="physicalBase"/>, accessed over qtest.</summary>
    public IRegisterWindow OpenRegisterWindow(ulong physicalBase, ulong length)
    {
        ThrowIfDisposed();
        return new QtestRegisterWindow(Qtest, physicalBase, length);
    }

    /// <summary>
    /// The PLIC source <paramref name="line"/> as an interrupt line. The first call finds the PLIC by its QOM type
    /// (QMP <c>qom-list /machine/unattached</c>; its index there depends on the machine options) and intercepts its
    /// inputs, after which every device interrupt is reported to this process instead of the parked CPU.
    /// </summary>
    public IInterruptLine OpenPlicLine(int line)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(line, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(line, QtestClient.MaxInterruptLine);
        ThrowIfDisposed();
        lock (_plicLock)
        {
            if (_plicPath is null)
            {
                string path = FindPlic();
                Qtest.IrqInterceptIn(path);
                _plicPath = path;
            }
        }

        return Qtest.GetInterruptLine(line);
    }

    /// <summary>
    /// A copy of the flattened device tree QEMU generated for this machine, found where a kernel would: through
    /// the address the boot ROM passes (<see cref="BootRomDeviceTreePointer"/>). The blob is big-endian.
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.MalformedDescription"/> when the address or header is implausible.</exception>
    public byte[] ReadDeviceTree()
    {
        ThrowIfDisposed();
        ulong address = Qtest.ReadQ(BootRomDeviceTreePointer);
        GuestRam ram = GuestRam;
        const int HeaderSize = 40;
        if (!ram.Contains(address, HeaderSize))
        {
            throw new VirtioException(
                VirtioErrorReason.MalformedDescription,
                $"The boot ROM names 0x{address:x} as the device tree, which is not inside guest RAM [0x{ram.BaseAddress:x}, 0x{ram.EndAddress:x}).");
        }

        Span<byte> header = ram.GetSpan(address, HeaderSize);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        uint totalSize = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        if (magic != 0xd00d_feed)
        {
            throw new VirtioException(
                VirtioErrorReason.MalformedDescription,
                $"The device tree at 0x{address:x} starts with 0x{magic:x8}, not the magic 0xd00dfeed.");
        }

        if (totalSize < HeaderSize || totalSize > MaxDeviceTreeSize || !ram.Contains(address, totalSize))
        {
            throw new VirtioException(
                VirtioErrorReason.MalformedDescription,
                $"The device tree at 0x{address:x} claims {totalSize} bytes: not between {HeaderSize} and {MaxDeviceTreeSize}, or past the end of RAM.");
        }

        return ram.GetSpan(address, (int)totalSize).ToArray();
    }

    /// <summary>
    /// Stops QEMU (killing it and waiting for it), closes the connections, unmaps guest RAM and removes every file
    /// the machine made. Idempotent, and safe after QEMU died or was killed from outside. DMA regions and spans over
    /// guest RAM are invalid afterwards.
    /// </summary>
    public void Dispose() => DisposeCore(processExiting: false);

    /// <inheritdoc />
    public override string ToString() => $"QEMU {(Options.Machine == QemuMachineKind.X86Q35 ? "x86_64 q35" : "riscv64 virt")} (pid {ProcessId}{(HasExited ? ", exited" : "")})";

    private void Boot(string qemu, string setpriv, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        string unique = FormattableString.Invariant(
            $"{Environment.ProcessId}-{Interlocked.Increment(ref s_instanceCounter)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        _tempDirectory = CreatePrivateDirectory("vnet-qemu-" + unique);
        string park = Path.Combine(_tempDirectory, "park.bin");
        string qtestSocket = Path.Combine(_tempDirectory, "qtest.sock");
        string qmpSocket = Path.Combine(_tempDirectory, "qmp.sock");
        File.WriteAllBytes(park, Options.Machine == QemuMachineKind.X86Q35 ? Q35ParkFirmware.CreateImage() : ParkProgram);
        _shmPath = "/dev/shm/vnet-" + unique;

        // QEMU connects to both as a client (-qtest unix:PATH, -qmp unix:PATH), so nothing races on socket files appearing.
        _qtestListener = Listen(qtestSocket);
        _qmpListener = Listen(qmpSocket);

        List<string> arguments = Options.Machine == QemuMachineKind.X86Q35
            ? BuildQ35Arguments(qemu, park, qtestSocket, qmpSocket)
            : BuildArguments(qemu, park, qtestSocket, qmpSocket);
        CommandLine = "setpriv " + string.Join(' ', arguments.Select(Quote));
        _process = QemuProcess.Start(setpriv, arguments);

        Socket qtest = Accept(_qtestListener, "qtest", deadline, cancellationToken);
        _qtest = new QtestClient(qtest, DescribeDeath, Options.CommandTimeout);
        Socket qmp = Accept(_qmpListener, "QMP", deadline, cancellationToken);
        _monitor = new QemuMonitor(qmp, DescribeDeath, Options.CommandTimeout);
        _qtestListener.Dispose();
        _qmpListener.Dispose();
        FinishConnect(deadline, cancellationToken);
    }

    // Both connections are up: waits for the machine to exist, maps guest RAM and sets the DMA range.
    private void FinishConnect(Stopwatch deadline, CancellationToken cancellationToken)
    {
        // The first reply means the machine exists: RAM file created, PARK and device tree loaded, reset done.
        TimeSpan remaining = Options.StartTimeout - deadline.Elapsed;
        if (Options.Machine == QemuMachineKind.X86Q35)
        {
            // q35 has no boot ROM or device tree; its first command checks the park firmware instead.
            ConnectQ35(remaining > TimeSpan.FromSeconds(1) ? remaining : TimeSpan.FromSeconds(1), cancellationToken);
            return;
        }

        ulong deviceTree = _qtest!.ReadQ(BootRomDeviceTreePointer, remaining > TimeSpan.FromSeconds(1) ? remaining : TimeSpan.FromSeconds(1));
        cancellationToken.ThrowIfCancellationRequested();

        ulong ramSize = (ulong)Options.MemoryMiB * 1024 * 1024;
        _ram = GuestRam.Map(_shmPath!, RamBase, ramSize);
        ReleaseFiles();

        _monitor!.Handshake();

        if (!_ram.Contains(deviceTree, 1))
        {
            throw new VirtioException(
                VirtioErrorReason.MalformedDescription,
                $"The boot ROM names 0x{deviceTree:x} as the device tree, outside guest RAM; this QEMU lays out riscv virt differently.");
        }

        // QEMU puts the tree at the top of RAM, aligned down to 2 MiB; the margin keeps anything it may add beside the tree out of reach.
        const ulong MiB = 1024 * 1024;
        ulong dmaEnd = (deviceTree & ~(MiB - 1)) - MiB;
        _allocator = new GuestRamAllocator(_ram, DmaBase, dmaEnd);
    }

    private static string RequireQemu(QemuMachineOptions options) =>
        ResolveExecutable(options.QemuPath)
            ?? throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"QEMU not found: '{options.QemuPath}' is not on PATH. Install it with: apt-get install {(options.Machine == QemuMachineKind.X86Q35 ? "qemu-system-x86" : "qemu-system-misc")}");

    private List<string> BuildArguments(string qemu, string park, string qtestSocket, string qmpSocket)
    {
        List<string> arguments =
        [
            "--pdeathsig", "KILL", "--", qemu,
            "-machine", "virt,memory-backend=mem",
            "-object", FormattableString.Invariant($"memory-backend-file,id=mem,size={Options.MemoryMiB}M,mem-path={_shmPath},share=on"),
            "-bios", "none",
            "-kernel", park,
            "-qtest", "unix:" + qtestSocket,
            "-qtest-log", "/dev/null",
            "-qmp", "unix:" + qmpSocket,
            "-display", "none",
            "-nodefaults",
        ];
        if (Options.ModernMmio)
        {
            arguments.AddRange(["-global", "virtio-mmio.force-legacy=false"]);
        }

        // QEMU hands out virtio-mmio slots from the top down, in command-line order: fillers first push the net device lower.
        for (int i = 0; i < Options.DevicesBeforeNet; i++)
        {
            arguments.AddRange(["-device", "virtio-rng-device"]);
        }

        AddNetDeviceArguments(arguments);
        return arguments;
    }

    // The netdev and the net device (both boards), then the caller's extra arguments. The PCI models put the same netdev
    // behind a virtio-net-pci function instead of a virtio-mmio slot (q35 refuses the virtio-mmio model when it starts).
    private void AddNetDeviceArguments(List<string> arguments)
    {
        string device = Options.NetDeviceModel switch
        {
            QemuNetDeviceModel.VirtioPciModern => $"virtio-net-pci,netdev={Options.NetdevId},id={NetDeviceId},disable-legacy=on",
            QemuNetDeviceModel.VirtioPciTransitional => $"virtio-net-pci,netdev={Options.NetdevId},id={NetDeviceId}",
            QemuNetDeviceModel.VirtioPciLegacy => $"virtio-net-pci,netdev={Options.NetdevId},id={NetDeviceId},disable-modern=on",
            _ => $"virtio-net-device,netdev={Options.NetdevId},id={NetDeviceId}",
        };
        if (Options.NetDeviceProperties.Length > 0)
        {
            device += "," + Options.NetDeviceProperties;
        }

        arguments.AddRange(["-netdev", Options.Netdev, "-device", device]);
        arguments.AddRange(Options.ExtraArguments);
    }

    private string FindPlic()
    {
        const string Container = "/machine/unattached";
        foreach (QomProperty child in Monitor.QomList(Container))
        {
            if (child.IsChildOfType(PlicQomType))
            {
                return $"{Container}/{child.Name}";
            }
        }

        throw new VirtioException(VirtioErrorReason.PlatformFailure, $"No child of type {PlicQomType} under {Container}: is this a riscv virt machine?");
    }

    private Socket Accept(Socket listener, string what, Stopwatch deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (listener.Poll(TimeSpan.FromMilliseconds(50), SelectMode.SelectRead))
            {
                return listener.Accept();
            }

            if (_process!.HasExited)
            {
                throw new VirtioException(VirtioErrorReason.PlatformFailure, $"{_process.DescribeExit(TimeSpan.Zero)}. Command line: {CommandLine}");
            }

            if (deadline.Elapsed > Options.StartTimeout)
            {
                throw new VirtioException(
                    VirtioErrorReason.Timeout,
                    $"QEMU did not connect its {what} socket within {Options.StartTimeout.TotalSeconds:0.#} s: {_process.StderrTail()}. Command line: {CommandLine}");
            }
        }
    }

    private string DescribeDeath() =>
        Volatile.Read(ref _disposed) != 0 ? "The QEMU machine was disposed."
        : _process is not null ? _process.DescribeExit(TimeSpan.FromSeconds(2))
        : DescribeDetachedDeath();

    private void DisposeCore(bool processExiting)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        AppDomain.CurrentDomain.ProcessExit -= _onProcessExit;
        _qtest?.Dispose();
        _monitor?.Dispose();
        _qtestListener?.Dispose();
        _qmpListener?.Dispose();
        if (_process is not null)
        {
            _process.Kill(TimeSpan.FromSeconds(10));
            _process.Dispose();
        }

        // When the process is exiting, other threads may still be touching guest RAM: unmapping under them would turn
        // a clean exit into a crash, and the kernel drops the mapping a moment later anyway.
        if (!processExiting)
        {
            try
            {
                _ram?.Unmap();
            }
            catch (VirtioException)
            {
                // munmap of a mapping this type made cannot fail in practice; there is nothing better to do in Dispose.
            }
        }

        // A detached machine's RAM file and directory belong to the machine, not to this driver.
        if (_shmPath is not null && _detached is null)
        {
            TryDelete(() => File.Delete(_shmPath));
        }

        DeleteTemporaryDirectory();
        _driverLock?.Dispose();
    }

    // Once RAM is mapped, the RAM file and the directory of a machine this process started go at once (no crash leaves
    // them); those of a detached machine stay for the next driver.
    private void ReleaseFiles()
    {
        if (_detached is null)
        {
            File.Delete(_shmPath!);
            DeleteTemporaryDirectory();
        }
    }

    private void DeleteTemporaryDirectory()
    {
        string? directory = Interlocked.Exchange(ref _tempDirectory, null);
        if (directory is not null)
        {
            TryDelete(() => Directory.Delete(directory, recursive: true));
        }
    }

    private static void TryDelete(Action delete)
    {
        try
        {
            delete();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Already gone, or not ours to remove: either way nothing is left to clean here.
        }
    }

    private static Socket Listen(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(1);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    // Unix socket paths are limited to 107 bytes: a long TMPDIR falls back to /tmp.
    private static string CreatePrivateDirectory(string name)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("QEMU machines need Linux: unix sockets, /dev/shm and setpriv.");
        }

        string parent = Path.GetTempPath();
        if (Encoding.UTF8.GetByteCount(parent) > 64 && Directory.Exists("/tmp"))
        {
            parent = "/tmp";
        }

        string path = Path.Combine(parent, name);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static string? ResolveExecutable(string nameOrPath)
    {
        if (nameOrPath.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(nameOrPath) ? Path.GetFullPath(nameOrPath) : null;
        }

        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, nameOrPath);
            if (File.Exists(candidate)
                && !OperatingSystem.IsWindows()
                && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
            {
                return candidate;
            }
        }

        return null;
    }

    private static string Quote(string argument) =>
        argument.Length > 0 && !argument.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"' or '\\' or '$' or '*' or '?' or '[' or ']' or ';' or '&' or '|' or '<' or '>' or '(' or ')')
            ? argument
            : "'" + argument.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private static InvalidOperationException NotStarted() => new("The QEMU machine has not finished starting.");
}
