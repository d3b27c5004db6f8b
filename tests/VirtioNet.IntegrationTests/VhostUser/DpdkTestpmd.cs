using System.Diagnostics;
using System.Text;
using VirtioNet.IntegrationTests.Processes;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// dpdk-testpmd as a vhost-user backend (command lines in docs/PERFORMANCE.md): one vhost port with one queue pair, a forwarding mode,
/// its socket in a private temporary directory and a unique --file-prefix, killed with this process (setpriv
/// --pdeathsig). Can be killed and started again on the same socket to play a backend that crashed and came back.
/// </summary>
internal sealed class DpdkTestpmd : IDisposable
{
    // How long testpmd may take to come up (it takes about a second on this machine's kind).
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private static int s_instances;

    // testpmd's output, kept for assertions and failure messages.
    private readonly StringBuilder _log = new();

    private Process? _process;

    // The thread that started testpmd and waits for it (OwnedProcess); joined before the process is disposed.
    private Thread? _owner;

    // testpmd options after the forwarding mode (e.g. the noisy mode's buffering).
    private readonly string[] _extraArguments;

    private DpdkTestpmd(string forwardMode, bool backendIsClient, string[] extraArguments, int queues = 1)
    {
        _extraArguments = extraArguments;
        Queues = queues;
        ForwardMode = forwardMode;
        BackendIsClient = backendIsClient;
        Directory = System.IO.Directory.CreateTempSubdirectory("vnet-vu-").FullName;
        SocketPath = Path.Combine(Directory, "vh.sock");
        FilePrefix = $"vnet{Environment.ProcessId}x{Interlocked.Increment(ref s_instances)}";
    }

    /// <summary>The temporary directory holding the socket.</summary>
    public string Directory { get; }

    /// <summary>The vhost-user socket path.</summary>
    public string SocketPath { get; }

    /// <summary>testpmd's --file-prefix (its runtime directory under /var/run/dpdk).</summary>
    public string FilePrefix { get; }

    /// <summary>rxonly, txonly, io or macswap.</summary>
    public string ForwardMode { get; }

    /// <summary>Queue pairs of the vhost port (<c>queues=N</c>) and of testpmd (<c>--rxq=N --txq=N</c>).</summary>
    public int Queues { get; }

    /// <summary>True for <c>client=1</c>: the backend connects to a socket the driver listens on.</summary>
    public bool BackendIsClient { get; }

    /// <summary>
    /// Everything testpmd printed since it was last started. Readiness matters in client mode: a driver that accepts
    /// the backend before testpmd has started its port sees frames go out but none come back (DPDK 22.11).
    /// </summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>The exact command line of the last start, for reports.</summary>
    public string CommandLine { get; private set; } = string.Empty;

    /// <summary>
    /// Starts testpmd and waits until it forwards. In server mode (the default) the socket exists when this returns;
    /// in client mode testpmd keeps trying to connect to <see cref="SocketPath"/> until the driver listens there.
    /// </summary>
    public static DpdkTestpmd Start(string forwardMode = "macswap", bool backendIsClient = false, params string[] extraArguments)
    {
        DpdkRequirement.EnsureAvailable();
        var testpmd = new DpdkTestpmd(forwardMode, backendIsClient, extraArguments);
        try
        {
            testpmd.Restart();
            return testpmd;
        }
        catch
        {
            testpmd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts testpmd with <paramref name="queues"/> queue pairs on its vhost port. testpmd forwards each receive queue
    /// to the transmit queue of the same number (one stream per queue, all on its one forwarding core).
    /// </summary>
    public static DpdkTestpmd StartMultiQueue(int queues, string forwardMode = "macswap")
    {
        DpdkRequirement.EnsureAvailable();
        var testpmd = new DpdkTestpmd(forwardMode, backendIsClient: false, [$"--rxq={queues}", $"--txq={queues}"], queues);
        try
        {
            testpmd.Restart();
            return testpmd;
        }
        catch
        {
            testpmd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts testpmd (server mode, one queue pair) with devargs added to its net_vhost vdev, e.g. <c>tso=1</c> for the
    /// PMD to offer HOST_TSO4/6, which it leaves out by default.
    /// </summary>
    public static DpdkTestpmd StartWithVdevOptions(string forwardMode, string vdevOptions, params string[] extraArguments)
    {
        DpdkRequirement.EnsureAvailable();
        var testpmd = new DpdkTestpmd(forwardMode, backendIsClient: false, extraArguments) { VdevOptions = vdevOptions };
        try
        {
            testpmd.Restart();
            return testpmd;
        }
        catch
        {
            testpmd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts testpmd (server mode) with <paramref name="ports"/> vhost ports, one queue pair each, on sockets
    /// <see cref="SocketPathOf"/>(0 .. ports - 1), each port forwarding back to itself (<c>--port-topology=loop</c>).
    /// </summary>
    public static DpdkTestpmd StartPorts(int ports, string forwardMode = "macswap")
    {
        DpdkRequirement.EnsureAvailable();
        var testpmd = new DpdkTestpmd(forwardMode, backendIsClient: false, ["--port-topology=loop"]) { Ports = ports };
        try
        {
            testpmd.Restart();
            return testpmd;
        }
        catch
        {
            testpmd.Dispose();
            throw;
        }
    }

    /// <summary>vhost ports (one net_vhost vdev each); 1 unless started with <see cref="StartPorts"/>.</summary>
    public int Ports { get; private init; } = 1;

    /// <summary>The socket of vhost port <paramref name="port"/> (port 0's is <see cref="SocketPath"/>).</summary>
    public string SocketPathOf(int port) => port == 0 ? SocketPath : Path.Combine(Directory, $"vh{port}.sock");

    /// <summary>
    /// Stops testpmd where it is (SIGSTOP): a backend that takes nothing from the rings until <see cref="Resume"/>.
    /// Returns once every thread of it is stopped: kill(2) returns when the signal is sent, and a forwarding thread
    /// already running goes on taking buffers for a moment after (on a loaded machine, long enough to be seen).
    /// </summary>
    public void Pause()
    {
        Signal("STOP");
        int pid = (_process ?? throw new InvalidOperationException("testpmd is not running.")).Id;
        var clock = Stopwatch.StartNew();
        while (!AllThreadsStopped(pid))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "testpmd's threads did not all stop within 10 s of SIGSTOP.");
            Thread.Sleep(1);
        }
    }

    // Every /proc/PID/task/TID/stat says T (stopped), t (traced) or that the thread is gone (Z, X): the state is the
    // first field after the name's ")".
    private static bool AllThreadsStopped(int pid)
    {
        foreach (string task in System.IO.Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue;
            }

            int end = stat.LastIndexOf(')');
            if (end < 0 || end + 2 >= stat.Length || stat[end + 2] is not ('T' or 't' or 'Z' or 'X'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Lets a paused testpmd run again (SIGCONT).</summary>
    public void Resume() => Signal("CONT");

    /// <summary>Devargs added to the net_vhost vdev (comma-separated, without the leading comma); empty by default.</summary>
    public string VdevOptions { get; private init; } = string.Empty;

    /// <summary>Starts testpmd again (after <see cref="Kill"/>), on the same socket path.</summary>
    public void Restart()
    {
        Kill();
        if (!BackendIsClient)
        {
            // A killed server leaves its socket file; DPDK's bind would fail on it.
            for (int port = 0; port < Ports; port++)
            {
                File.Delete(SocketPathOf(port));
            }
        }

        // The readiness check below looks for a line of this run, not of the last one.
        lock (_log)
        {
            _log.Clear();
        }

        string[] vdevs = [.. Enumerable.Range(0, Ports).SelectMany(port => new[]
        {
            "--vdev",
            $"net_vhost{port},iface={SocketPathOf(port)},queues={Queues}{(BackendIsClient ? ",client=1" : string.Empty)}{(VdevOptions.Length > 0 ? "," + VdevOptions : string.Empty)}",
        })];
        string[] arguments =
        [
            "--pdeathsig", "KILL", "--", DpdkRequirement.TestpmdBinary,
            "-l", "0,1", "--main-lcore", "1", "--no-huge", "-m", "512", "--no-pci", $"--file-prefix={FilePrefix}",
            .. vdevs, "--",
            "--no-mlockall", "--total-num-mbufs=8192", $"--forward-mode={ForwardMode}", "--stats-period", "3",
            .. _extraArguments,
        ];
        CommandLine = "setpriv " + string.Join(' ', arguments.Select(a => a.Contains(',') ? $"'{a}'" : a));
        var info = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,

            // Kept open: without --stats-period testpmd exits on EOF of stdin; with it, this costs nothing.
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        (Process process, Thread owner) = OwnedProcess.Start(info, Append, "dpdk-testpmd");
        _process = process;
        _owner = owner;

        var clock = Stopwatch.StartNew();
        while (!Log.Contains("start packet forwarding", StringComparison.Ordinal) || (!BackendIsClient && !Enumerable.Range(0, Ports).All(port => File.Exists(SocketPathOf(port)))))
        {
            if (process.HasExited)
            {
                Assert.Fail($"dpdk-testpmd exited with {process.ExitCode} while starting.\n{CommandLine}\n{Log}");
            }

            if (clock.Elapsed > StartTimeout)
            {
                Assert.Fail($"dpdk-testpmd did not start forwarding within {StartTimeout.TotalSeconds} s.\n{CommandLine}\n{Log}");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>Waits until testpmd has printed <paramref name="text"/> (since it was last started); false after <paramref name="timeout"/>.</summary>
    public bool WaitForLog(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!Log.Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(20);
        }

        return true;
    }

    /// <summary>Kills testpmd at once (SIGKILL), as a crash would, and waits for it to be gone.</summary>
    public void Kill()
    {
        if (_process is { } process)
        {
            if (!process.HasExited)
            {
                process.Kill();
            }

            process.WaitForExit();
            _owner?.Join();
            process.Dispose();
            _process = null;
            _owner = null;
        }
    }

    /// <summary>Kills testpmd and removes its socket directory and DPDK runtime directory.</summary>
    public void Dispose()
    {
        Kill();
        TryDelete(Directory);
        TryDelete(Path.Combine("/var/run/dpdk", FilePrefix));
    }

    private void Signal(string signal)
    {
        Process process = _process ?? throw new InvalidOperationException("testpmd is not running.");
        using var kill = Process.Start(new ProcessStartInfo("kill", $"-{signal} {process.Id}") { UseShellExecute = false })!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    private static void TryDelete(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}
