using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using VirtioNet.IntegrationTests.Processes;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// A private Open vSwitch with DPDK: its own ovsdb-server and ovs-vswitchd-dpdk, database, sockets and logs in a
/// temporary directory (OVS_RUNDIR), one bridge with datapath_type=netdev, and vhost-user ports added on demand. Never
/// the system's OVS service: nothing is read from or written to /var/run/openvswitch or /etc/openvswitch.
/// <para>
/// DPDK runs without hugepages: <c>--no-huge -m 512</c> as testpmd does, plus <c>--legacy-mem</c>, because OVS 3.1
/// appends <c>--in-memory</c> to the EAL arguments unless <c>--legacy-mem</c> is given, and DPDK refuses
/// <c>--in-memory</c> with <c>--no-huge</c> (which implies legacy memory): "Option --legacy-mem is not compatible
/// with --in-memory". <c>--no-shconf</c> keeps DPDK's shared configuration files away; the main lcore is core 0 and the
/// one PMD thread polls on core 1. <c>per-port-memory=true</c>: OVS's default shared mempool asks for 262144 mbufs,
/// then 131072, which 512 MB cannot hold ("Failed to create memory pool for netdev vu0, with MTU 1500 on socket 0: No
/// buffer space available", and the port never comes up); a pool sized for each port's rings fits.
/// </para>
/// <para>
/// Both daemons run under <c>setpriv --pdeathsig KILL</c>, so they die with this process. ovs-vswitchd also runs in a
/// network namespace of its own (<c>unshare --net</c>): the bridge's internal port of a netdev datapath is a persistent
/// TAP device, which a killed switch would otherwise leave behind in the host's namespace; the namespace, and the TAP
/// with it, goes when the process does. vhost-user sockets are paths, so the namespace does not affect them.
/// </para>
/// <para>
/// <see cref="StartInNamespace"/> starts the same pair without DPDK, ovs-vswitchd inside a test's named network
/// namespace instead of a namespace of its own: a bridge of kernel interfaces there (a TAP as a <c>system</c> port,
/// <c>internal</c> ports), switched by OVS's userspace (netdev) datapath. Its TAPs live and die with that namespace.
/// </para>
/// </summary>
internal sealed class OvsDpdkSwitch : IDisposable
{
    // How long a tool or the switch may take: ovs-vswitchd initialises DPDK in well under a second on this machine's kind.
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(30);

    // Names carry the test process's id, so that what a killed test process left is recognised and removed.
    private const string DirectoryPrefix = "vnet-ovs-";
    private const string FilePrefixStart = "vnetovs";

    private static int s_instances;

    // Each daemon with the thread that started it and waits for it (its parent as far as PR_SET_PDEATHSIG is concerned).
    private readonly List<(Process Process, Thread Owner)> _daemons = [];

    // The named network namespace ovs-vswitchd runs in, or null for a namespace of its own (unshare --net) with DPDK.
    private readonly string? _networkNamespace;

    private OvsDpdkSwitch(string? networkNamespace)
    {
        _networkNamespace = networkNamespace;
        Directory = System.IO.Directory.CreateTempSubdirectory($"{DirectoryPrefix}{Environment.ProcessId}-").FullName;
        FilePrefix = $"{FilePrefixStart}{Environment.ProcessId}x{Interlocked.Increment(ref s_instances)}";
    }

    /// <summary>The temporary directory: database, sockets (OVS_RUNDIR), logs.</summary>
    public string Directory { get; }

    /// <summary>DPDK's --file-prefix for this switch.</summary>
    public string FilePrefix { get; }

    /// <summary>The bridge's name.</summary>
    public string Bridge { get; } = "br0";

    /// <summary>The database socket the tools are pointed at.</summary>
    public string DatabaseSocket => Path.Combine(Directory, "db.sock");

    /// <summary>The EAL arguments given to OVS (other_config:dpdk-extra), for reports.</summary>
    public string DpdkExtra => $"--no-huge -m 512 --legacy-mem --no-shconf --no-pci --file-prefix={FilePrefix}";

    /// <summary>ovs-vswitchd's log so far, for failure messages.</summary>
    public string Log
    {
        get
        {
            try
            {
                using var stream = new FileStream(Path.Combine(Directory, "ovs-vswitchd.log"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                using var reader = new StreamReader(stream);
                return reader.ReadToEnd();
            }
            catch (IOException e)
            {
                return $"(no ovs-vswitchd log: {e.Message})";
            }
        }
    }

    /// <summary>
    /// Starts ovsdb-server and ovs-vswitchd-dpdk, waits until DPDK is initialised and creates the bridge
    /// (datapath_type=netdev, the NORMAL flow: MAC learning).
    /// </summary>
    public static OvsDpdkSwitch Start()
    {
        OvsRequirement.EnsureAvailable();
        RemoveLeftoversOfDeadProcesses();
        return Launch(new OvsDpdkSwitch(null));
    }

    /// <summary>
    /// Starts ovsdb-server, and ovs-vswitchd inside the named network namespace <paramref name="networkNamespace"/>
    /// (<c>ip netns exec</c>; it dies with this process all the same), without DPDK (<c>dpdk-init</c> left false: no
    /// EAL, no PMD thread, no memory set aside), and creates the bridge (datapath_type=netdev, NORMAL). Ports are then
    /// kernel interfaces of that namespace: <c>system</c> ports (an existing interface, read and written through a
    /// packet socket) and <c>internal</c> ports (a TAP OVS creates there). The bridge's own internal port is left down.
    /// </summary>
    public static OvsDpdkSwitch StartInNamespace(string networkNamespace)
    {
        OvsRequirement.EnsureAvailable();
        RemoveLeftoversOfDeadProcesses();
        return Launch(new OvsDpdkSwitch(networkNamespace));
    }

    private static OvsDpdkSwitch Launch(OvsDpdkSwitch ovs)
    {
        try
        {
            ovs.StartDaemons();
            return ovs;
        }
        catch
        {
            ovs.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Adds a <c>dpdkvhostuserclient</c> port: OVS connects (and reconnects) to a socket the driver listens on. Returns
    /// the socket path for <c>VhostUserOptions { SocketMode = Listen }</c>. <paramref name="settings"/> are more
    /// Interface column settings, e.g. <c>other_config:tx-steering=hash</c>.
    /// </summary>
    public string AddClientPort(string name, params string[] settings)
    {
        string socket = Path.Combine(Directory, name + ".sock");
        Vsctl(["add-port", Bridge, name, "--", "set", "Interface", name, "type=dpdkvhostuserclient", $"options:vhost-server-path={socket}", .. settings]);
        return socket;
    }

    /// <summary>
    /// Adds a <c>dpdkvhostuser</c> port: OVS listens on a socket in its run directory (deprecated by OVS, still
    /// supported). Returns the socket path for the driver's default connect mode.
    /// </summary>
    public string AddServerPort(string name, params string[] settings)
    {
        Vsctl(["add-port", Bridge, name, "--", "set", "Interface", name, "type=dpdkvhostuser", .. settings]);
        string socket = Path.Combine(Directory, name);
        Assert.True(File.Exists(socket), $"OVS did not create {socket}.\n{Log}");
        return socket;
    }

    /// <summary>
    /// Adds an existing kernel interface of the switch's namespace as a <c>system</c> port (netdev datapath: OVS reads
    /// and writes its frames through a packet socket). <paramref name="settings"/> are more Port column settings, e.g.
    /// <c>trunks=100</c>.
    /// </summary>
    public void AddSystemPort(string name, params string[] settings) => Vsctl(["add-port", Bridge, name, .. settings]);

    /// <summary>
    /// Adds an <c>internal</c> port: a kernel interface (a TAP in the netdev datapath) that OVS creates in its
    /// namespace. <paramref name="settings"/> are more Port column settings, e.g. <c>tag=100</c> for an access port.
    /// </summary>
    public void AddInternalPort(string name, params string[] settings) =>
        Vsctl(["add-port", Bridge, name, .. settings, "--", "set", "Interface", name, "type=internal"]);

    /// <summary>Waits until OVS reports the port's link up: the vhost-user device is configured and in the datapath.</summary>
    public void WaitForLinkUp(string port, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        string state;
        while ((state = Vsctl("get", "Interface", port, "link_state").Trim()) != "up")
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"port {port} is {state} after {timeout.TotalSeconds} s.\n{Log}");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>
    /// The port's OpenFlow statistics, read live from the datapath (<c>ovs-ofctl dump-ports</c>); null when OVS cannot
    /// read them. OVS 3.1 (Debian 12) answers "?" for every counter of a <c>dpdkvhostuser</c> (server) port, with DPDK's
    /// own virtio-user as the frontend too (<c>ovs-appctl dpctl/show -s</c>: "could not retrieve stats (Protocol
    /// error)"); <c>dpdkvhostuserclient</c> ports have them.
    /// </summary>
    public OvsPortStatistics? GetPortStatistics(string port)
    {
        string output = Ofctl("dump-ports", Bridge, port);
        if (output.Contains("rx pkts=?", StringComparison.Ordinal))
        {
            return null;
        }

        // "port  1: rx pkts=N, bytes=N, drop=N, errs=?, ..." then "tx pkts=N, bytes=N, drop=N, ..." (OpenFlow 1.0; a vhost
        // port reports no error counters, "?").
        Match rx = Regex.Match(output, @"rx pkts=(\d+), bytes=(\d+), drop=(\d+)");
        Match tx = Regex.Match(output, @"tx pkts=(\d+), bytes=(\d+), drop=(\d+)");
        Assert.True(rx.Success && tx.Success, $"unexpected ovs-ofctl dump-ports output:\n{output}");
        return new OvsPortStatistics(Number(rx, 1), Number(rx, 2), Number(rx, 3), Number(tx, 1), Number(tx, 2), Number(tx, 3));

        static long Number(Match match, int group) => long.Parse(match.Groups[group].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Adds an OpenFlow rule to the bridge (<c>ovs-ofctl add-flow</c>).</summary>
    public void AddFlow(string flow) => Ofctl("add-flow", Bridge, flow);

    /// <summary>The packets counted by the rule whose dump-flows line contains <paramref name="match"/> (e.g. <c>dl_type=0x88b6</c>).</summary>
    public long FlowPackets(string match)
    {
        string output = Ofctl("dump-flows", Bridge);
        string? line = output.Split('\n').FirstOrDefault(l => l.Contains(match, StringComparison.Ordinal));
        Match m = Regex.Match(line ?? string.Empty, @"n_packets=(\d+)");
        Assert.True(m.Success, $"no flow with {match}:\n{output}");
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Polls <see cref="FlowPackets"/> until it reaches <paramref name="count"/> (flow statistics reach OpenFlow when the revalidator next runs) or <paramref name="timeout"/> passes; returns the last value.</summary>
    public int FlowPacketsEventually(string match, int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        long packets;
        while ((packets = FlowPackets(match)) < count && clock.Elapsed < timeout)
        {
            Thread.Sleep(100);
        }

        return (int)packets;
    }

    /// <summary>Runs ovs-vsctl against this switch's database; returns its output, fails the test on an error.</summary>
    public string Vsctl(params string[] arguments) =>
        RunTool(OvsRequirement.VsctlBinary, [$"--db=unix:{DatabaseSocket}", "--timeout=20", .. arguments]);

    /// <summary>Runs ovs-ofctl against this switch's bridge (found through OVS_RUNDIR); fails the test on an error.</summary>
    public string Ofctl(params string[] arguments) => RunTool(OvsRequirement.OfctlBinary, arguments);

    /// <summary>Kills both daemons and removes the directory and DPDK's runtime directory.</summary>
    public void Dispose()
    {
        // The switch first: ovsdb-server going first would make it log reconnection attempts, nothing worse.
        for (int i = _daemons.Count - 1; i >= 0; i--)
        {
            (Process daemon, Thread owner) = _daemons[i];
            try
            {
                if (!daemon.HasExited)
                {
                    daemon.Kill();
                }

                daemon.WaitForExit();
            }
            catch (InvalidOperationException)
            {
            }

            owner.Join();
            daemon.Dispose();
        }

        _daemons.Clear();
        TryDelete(Directory);
        TryDelete(Path.Combine("/var/run/dpdk", FilePrefix));
    }

    private void StartDaemons()
    {
        string database = Path.Combine(Directory, "conf.db");
        RunTool(OvsRequirement.OvsdbToolBinary, "create", database, OvsRequirement.Schema);
        Process ovsdb = StartDaemon(
            OvsRequirement.OvsdbServerBinary,
            database, $"--remote=punix:{DatabaseSocket}", $"--unixctl={Path.Combine(Directory, "ovsdb-server.ctl")}",
            $"--log-file={Path.Combine(Directory, "ovsdb-server.log")}", "--no-chdir");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(DatabaseSocket))
        {
            if (ovsdb.HasExited || clock.Elapsed > ToolTimeout)
            {
                Assert.Fail($"ovsdb-server did not create {DatabaseSocket}.");
            }

            Thread.Sleep(20);
        }

        Vsctl("--no-wait", "init");
        if (_networkNamespace is not null)
        {
            StartSwitchWithoutDpdk(_networkNamespace);
            return;
        }

        Vsctl(
            "--no-wait", "set", "Open_vSwitch", ".",
            "other_config:dpdk-init=true",
            $"other_config:dpdk-extra=\"{DpdkExtra}\"",
            "other_config:per-port-memory=true",
            "other_config:dpdk-lcore-mask=0x1",
            "other_config:pmd-cpu-mask=0x2");

        Process vswitchd = StartDaemon(
            "unshare",
            "--net", "--", OvsRequirement.VswitchdBinary,
            $"unix:{DatabaseSocket}", $"--unixctl={Path.Combine(Directory, "ovs-vswitchd.ctl")}",
            $"--log-file={Path.Combine(Directory, "ovs-vswitchd.log")}", "--no-chdir");
        clock.Restart();
        while (Vsctl("get", "Open_vSwitch", ".", "dpdk_initialized").Trim() != "true")
        {
            if (vswitchd.HasExited || clock.Elapsed > ToolTimeout)
            {
                Assert.Fail($"ovs-vswitchd-dpdk did not initialise DPDK (exited: {vswitchd.HasExited}).\n{Log}");
            }

            Thread.Sleep(50);
        }

        Vsctl("add-br", Bridge, "--", "set", "Bridge", Bridge, "datapath_type=netdev");
    }

    private void StartSwitchWithoutDpdk(string networkNamespace)
    {
        Process vswitchd = StartDaemon(
            "ip",
            "netns", "exec", networkNamespace, OvsRequirement.VswitchdBinary,
            $"unix:{DatabaseSocket}", $"--unixctl={Path.Combine(Directory, "ovs-vswitchd.ctl")}",
            $"--log-file={Path.Combine(Directory, "ovs-vswitchd.log")}", "--no-chdir");

        // add-br waits (without --no-wait) until ovs-vswitchd has applied it; the daemon connects within milliseconds.
        var clock = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(Directory, "ovs-vswitchd.ctl")))
        {
            if (vswitchd.HasExited || clock.Elapsed > ToolTimeout)
            {
                Assert.Fail($"ovs-vswitchd did not start in {networkNamespace} (exited: {vswitchd.HasExited}).\n{Log}");
            }

            Thread.Sleep(20);
        }

        Vsctl("add-br", Bridge, "--", "set", "Bridge", Bridge, "datapath_type=netdev");
    }

    private Process StartDaemon(string program, params string[] arguments)
    {
        var info = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string argument in (string[])["--pdeathsig", "KILL", "--", program, .. arguments])
        {
            info.ArgumentList.Add(argument);
        }

        SetEnvironment(info);
        (Process process, Thread owner) = OwnedProcess.Start(info, static _ => { }, Path.GetFileName(program));
        _daemons.Add((process, owner));
        return process;
    }

    private string RunTool(string program, params string[] arguments)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        SetEnvironment(info);
        using var process = Process.Start(info)!;
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(ToolTimeout))
        {
            process.Kill();
            process.WaitForExit();
            Assert.Fail($"{program} {string.Join(' ', arguments)} did not finish within {ToolTimeout.TotalSeconds} s.\n{Log}");
        }

        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            Assert.Fail($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {stderr}\n{Log}");
        }

        return stdout.ToString();
    }

    private void SetEnvironment(ProcessStartInfo info)
    {
        // Every default location of the tools and daemons: sockets, pid files, vhost-sock-dir, bridge .mgmt sockets.
        info.Environment["OVS_RUNDIR"] = Directory;
        info.Environment["OVS_DBDIR"] = Directory;
        info.Environment["OVS_LOGDIR"] = Directory;
        info.Environment["OVS_SYSCONFDIR"] = Directory;
    }

    // The daemons die with a killed test process (setpriv --pdeathsig), but its directories stay: remove those whose
    // process is gone.
    private static void RemoveLeftoversOfDeadProcesses()
    {
        var candidates = new List<(string Path, string Suffix)>();
        foreach (string directory in System.IO.Directory.EnumerateDirectories(Path.GetTempPath(), DirectoryPrefix + "*"))
        {
            candidates.Add((directory, Path.GetFileName(directory)[DirectoryPrefix.Length..]));
        }

        if (System.IO.Directory.Exists("/var/run/dpdk"))
        {
            foreach (string directory in System.IO.Directory.EnumerateDirectories("/var/run/dpdk", FilePrefixStart + "*"))
            {
                candidates.Add((directory, Path.GetFileName(directory)[FilePrefixStart.Length..]));
            }
        }

        foreach ((string path, string suffix) in candidates)
        {
            string digits = new([.. suffix.TakeWhile(char.IsAsciiDigit)]);
            if (int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid != Environment.ProcessId
                && !System.IO.Directory.Exists($"/proc/{pid}"))
            {
                TryDelete(path);
            }
        }
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
}

/// <summary>One port's OpenFlow counters. For a vhost-user port, rx is what OVS took from the driver's transmit rings and tx what it put into the driver's receive rings.</summary>
internal readonly record struct OvsPortStatistics(long RxPackets, long RxBytes, long RxDropped, long TxPackets, long TxBytes, long TxDropped);
