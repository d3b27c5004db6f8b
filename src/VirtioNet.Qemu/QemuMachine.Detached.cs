using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace VirtioNet.Qemu;

/// <summary>
/// Machines that outlive their driver: <see cref="Launch"/> starts QEMU as a daemon whose qtest and QMP sockets listen
/// (<c>server=on,wait=off</c>) and whose guest RAM file stays under /dev/shm; <see cref="Attach"/> drives it from this
/// process, and a later process can attach again once this one is gone; <see cref="Stop"/> ends it.
/// </summary>
/// <remarks>
/// <para>What QEMU's qtest server does across a driver's death (softmmu/qtest.c, checked on QEMU 7.2 and 10.0): the
/// socket chardev accepts the next client once the old connection closes; interception of the interrupt controller's
/// inputs is kept (a second <c>irq_intercept_in</c> of the same device answers OK), and the reported levels are
/// forgotten on connect, so a new client starts from "all lines low". The device itself keeps running with the dead
/// driver's rings until the new driver resets it (status 0), which the net device's bring-up does first.</para>
/// <para>One trap stays: QEMU keeps the unfinished tail of the last command line in its input buffer, and a line that
/// does not parse aborts QEMU. The client sends each command as one short write, so a driver killed between commands
/// leaves no tail; one killed inside a write larger than the socket's free space could.</para>
/// </remarks>
public sealed partial class QemuMachine
{
    // Unix socket paths hold at most 107 bytes (sun_path).
    private const int MaxSocketPathBytes = 107;

    // Set when this process attached to a machine launched earlier: QEMU, its RAM file and its directory are not ours.
    private DetachedQemuMachine? _detached;

    // The exclusive lock on the machine's driver.lock, held while this process drives it (the kernel drops it on death).
    private FileStream? _driverLock;

    /// <summary>True when this object drives a machine started by <see cref="Launch"/>: disposing it leaves QEMU running.</summary>
    public bool IsAttached => _detached is not null;

    /// <summary>
    /// Starts QEMU as a daemon that outlives this process: its qtest and QMP sockets listen in
    /// <paramref name="directory"/> (which must exist and be private), its guest RAM stays in a /dev/shm file, and no
    /// driver is connected. Returns once QEMU has created the machine and detached.
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.PlatformFailure"/> when QEMU is missing or fails to start (the message quotes its
    /// stderr), <see cref="VirtioErrorReason.Timeout"/> when it does not detach within <see cref="QemuMachineOptions.StartTimeout"/>.
    /// </exception>
    public static DetachedQemuMachine Launch(QemuMachineOptions options, string directory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ValidateForMachine(options);
        string qemu = RequireQemu(options);
        directory = Path.GetFullPath(directory);
        if (!Directory.Exists(directory))
        {
            throw new ArgumentException($"The machine directory '{directory}' does not exist.", nameof(directory));
        }

        string ramPath = FormattableString.Invariant(
            $"/dev/shm/vnet-machine-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var detached = new DetachedQemuMachine { ProcessId = 0, Directory = directory, RamPath = ramPath };
        if (Encoding.UTF8.GetByteCount(detached.QtestSocket) > MaxSocketPathBytes)
        {
            throw new ArgumentException($"The machine directory '{directory}' is too long for a unix socket path.", nameof(directory));
        }

        string park = Path.Combine(directory, "park.bin");
        string pidFile = Path.Combine(directory, "qemu.pid");
        File.WriteAllBytes(park, options.Machine == QemuMachineKind.X86Q35 ? Q35ParkFirmware.CreateImage() : ParkProgram);

        // The same command line as a machine this process owns, but QEMU listens and detaches (-daemonize: it forks,
        // calls setsid, and its first process exits once the machine exists), and no death signal ties it to us.
        List<string> arguments;
        using (var builder = new QemuMachine(options))
        {
            builder._shmPath = ramPath;
            string qtestServer = detached.QtestSocket + ",server=on,wait=off";
            string qmpServer = detached.QmpSocket + ",server=on,wait=off";
            arguments = options.Machine == QemuMachineKind.X86Q35
                ? builder.BuildQ35Arguments(qemu, park, qtestServer, qmpServer)
                : builder.BuildArguments(qemu, park, qtestServer, qmpServer);

            // Not this builder's to delete: the file belongs to the machine.
            builder._shmPath = null;
        }

        arguments.RemoveRange(0, 4); // "--pdeathsig KILL -- qemu"
        arguments.AddRange(["-daemonize", "-pidfile", pidFile]);
        var start = new ProcessStartInfo(qemu) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        string commandLine = qemu + " " + string.Join(' ', arguments.Select(Quote));
        using Process process = Process.Start(start) ?? throw new VirtioException(VirtioErrorReason.PlatformFailure, $"Could not start {qemu}.");
        Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        if (!process.WaitForExit(options.StartTimeout))
        {
            process.Kill();
            throw new VirtioException(VirtioErrorReason.Timeout, $"QEMU did not detach within {options.StartTimeout.TotalSeconds:0.#} s. Command line: {commandLine}");
        }

        process.WaitForExit();
        string output = (stderr.Wait(TimeSpan.FromSeconds(5), CancellationToken.None) ? stderr.Result : string.Empty) + (stdout.Wait(TimeSpan.FromSeconds(1), CancellationToken.None) ? stdout.Result : string.Empty);
        if (process.ExitCode != 0)
        {
            TryDelete(() => File.Delete(ramPath));
            string said = string.Join(" | ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(6));
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QEMU exited (code {process.ExitCode}) while starting: {(said.Length == 0 ? "(no output)" : said)}. Command line: {commandLine}");
        }

        if (!int.TryParse(File.ReadAllText(pidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid <= 0)
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"QEMU detached but its pid file {pidFile} holds no process id.");
        }

        return detached with { ProcessId = pid };
    }

    /// <summary>
    /// Drives a machine started by <see cref="Launch"/> from this process: takes the machine's driver lock, connects to
    /// its qtest and QMP sockets and maps its guest RAM. <paramref name="options"/> must be those it was launched with.
    /// Disposing the result disconnects and leaves QEMU running for the next driver.
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.PlatformFailure"/> when the machine's QEMU is not running or another process
    /// drives it.
    /// </exception>
    public static QemuMachine Attach(QemuMachineOptions options, DetachedQemuMachine detached, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(detached);
        ValidateForMachine(options);
        if (!IsRunning(detached))
        {
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"the machine's QEMU (pid {detached.ProcessId}) is not running");
        }

        FileStream driverLock = AcquireDriverLock(detached);
        var machine = new QemuMachine(options) { _detached = detached, _driverLock = driverLock, _shmPath = detached.RamPath };
        try
        {
            var deadline = Stopwatch.StartNew();
            machine.CommandLine = $"(attached to pid {detached.ProcessId})";
            machine._qtest = new QtestClient(Connect(detached.QtestSocket), machine.DescribeDeath, options.CommandTimeout);
            machine._monitor = new QemuMonitor(Connect(detached.QmpSocket), machine.DescribeDeath, options.CommandTimeout);
            machine.FinishConnect(deadline, cancellationToken);
            return machine;
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// True while the machine's QEMU runs: the process id is alive, not a zombie, and is the QEMU whose command line
    /// names the machine's RAM file (so a reused process id is never mistaken for it).
    /// </summary>
    public static bool IsRunning(DetachedQemuMachine detached)
    {
        ArgumentNullException.ThrowIfNull(detached);
        string proc = "/proc/" + detached.ProcessId.ToString(CultureInfo.InvariantCulture);
        try
        {
            if (detached.ProcessId <= 0 || !File.ReadAllText(proc + "/cmdline").Contains(detached.RamPath, StringComparison.Ordinal))
            {
                return false;
            }

            // /proc/PID/stat: "pid (comm) S ..."; the state follows the last ')'.
            string stat = File.ReadAllText(proc + "/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] is not ('Z' or 'X');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Ends a machine started by <see cref="Launch"/> (SIGTERM, then SIGKILL after <paramref name="timeout"/>) and
    /// removes its RAM file and the files QEMU made in its directory. True when QEMU is gone.
    /// </summary>
    public static bool Stop(DetachedQemuMachine detached, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(detached);
        foreach (int signal in new[] { Interop.Signal.SIGTERM, Interop.Signal.SIGKILL })
        {
            if (!IsRunning(detached))
            {
                break;
            }

            _ = Interop.Signal.Kill(detached.ProcessId, signal);
            var clock = Stopwatch.StartNew();
            while (IsRunning(detached) && clock.Elapsed < timeout)
            {
                Thread.Sleep(20);
            }
        }

        bool gone = !IsRunning(detached);
        if (gone)
        {
            TryDelete(() => File.Delete(detached.RamPath));
            foreach (string file in new[] { detached.QtestSocket, detached.QmpSocket, "park.bin", "qemu.pid", "driver.lock", "driver.pid" })
            {
                TryDelete(() => File.Delete(Path.Combine(detached.Directory, file)));
            }
        }

        return gone;
    }

    /// <summary>The process id of the driver that holds the machine's driver lock, or null when none does.</summary>
    public static int? FindDriver(DetachedQemuMachine detached)
    {
        ArgumentNullException.ThrowIfNull(detached);
        using FileStream? probe = TryLockDriver(detached);
        return probe is null ? ReadDriverPid(detached) ?? -1 : null;
    }

    private static FileStream AcquireDriverLock(DetachedQemuMachine detached)
    {
        FileStream driverLock = TryLockDriver(detached) ?? throw new VirtioException(
            VirtioErrorReason.PlatformFailure,
            $"the machine already has a driver{(ReadDriverPid(detached) is { } pid ? $" (pid {pid})" : "")}");
        TryDelete(() => File.WriteAllText(detached.DriverPidPath, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)));
        return driverLock;
    }

    // FileShare.None makes .NET take flock(LOCK_EX | LOCK_NB) on the file; the kernel drops it when the holder's
    // descriptor closes, also when the holder is killed, so a dead driver never blocks the next one.
    private static FileStream? TryLockDriver(DetachedQemuMachine detached)
    {
        try
        {
            return new FileStream(detached.DriverLockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static int? ReadDriverPid(DetachedQemuMachine detached)
    {
        try
        {
            return int.TryParse(File.ReadAllText(detached.DriverPidPath).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static Socket Connect(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"Could not connect to the machine's socket {path}: {e.Message}", e);
        }
    }

    private string DescribeDetachedDeath() =>
        $"QEMU (pid {_detached?.ProcessId}) closed its connection{(_detached is not null && IsRunning(_detached) ? " but is still running" : " and is gone")}";
}
