using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Numerics;
using System.Text.Json.Nodes;
using VirtioNet.Diagnostics;
using VirtioNet.Net;

namespace VirtioNet.Service;

/// <summary>
/// <c>vnet up</c>: presents a device that is up to the kernel as a TAP interface and serves it until stopped. TAP queue
/// i is served by queue pair i; the interface takes the device's MAC and MTU; its carrier follows the device's link;
/// with DHCP it gets the address and default route the device's network hands out. Everything it made (TAP, netlink
/// socket, pump threads, a namespace it created) is gone when <see cref="Run"/> returns, whatever the reason.
/// </summary>
internal static class TapService
{
    // The loopback interface's index in every network namespace.
    private const uint LoopbackIndex = 1;

    /// <summary>
    /// Checks what can be checked before a device is started: the TUN driver, the name, the namespace, and that the name
    /// is free or held by a TAP a dead instance left (then the options come back with <see cref="TapServiceOptions.Adopt"/>).
    /// </summary>
    public static TapServiceOptions Preflight(TapServiceOptions options)
    {
        TapInterface.CheckName(options.TapName);
        if (!File.Exists("/dev/net/tun"))
        {
            throw new ServiceException("/dev/net/tun does not exist: the kernel's TUN/TAP driver is missing (modprobe tun)");
        }

        if (!Environment.IsPrivilegedProcess)
        {
            throw new ServiceException("vnet up creates a TAP interface, which needs root (CAP_NET_ADMIN)");
        }

        if (options.ControlDirectory is { } directory && ControlServer.IsAnswered(ControlServer.PathFor(directory, options.InstanceName ?? options.TapName)))
        {
            throw new ServiceException($"instance '{options.InstanceName ?? options.TapName}' is already running (vnet list shows it)");
        }

        if (options.Namespace is { } netns && !NamespaceThread.Exists(netns))
        {
            if (!options.CreateNamespace)
            {
                throw new ServiceException($"network namespace '{netns}' does not exist (create it with 'ip netns add {netns}', or give --exec to have it made and removed)");
            }

            return options;
        }

        return PersistentTap.Find(options.TapName, options.Namespace, out string holder) switch
        {
            PersistentTap.Holder.Nobody => options,
            PersistentTap.Holder.Orphan => options with { Adopt = true },
            _ => throw new ServiceException($"interface name '{options.TapName}' is already taken{(options.Namespace is null ? "" : $" in namespace {options.Namespace}")} ({holder})"),
        };
    }

    /// <summary>
    /// Serves <paramref name="link"/> through the TAP until <paramref name="cancellationToken"/> fires, a pump fails, or
    /// the <see cref="TapServiceOptions.Exec"/> command ends. Returns 0, or the command's exit code.
    /// </summary>
    public static int Run(DeviceLink link, TapServiceOptions options, Action<string> log, CancellationToken cancellationToken)
    {
        OwnedNamespace? created = null;
        if (options.Namespace is { } netns && options.CreateNamespace && !NamespaceThread.Exists(netns))
        {
            created = OwnedNamespace.Create(netns);
            log($"created network namespace {netns}");

            // A fresh namespace's loopback is down; programs run there expect it up.
            using RouteNetlink loopback = RouteNetlink.Open(netns);
            loopback.SetLink(LoopbackIndex, default, 0, up: true);
        }

        try
        {
            return Serve(link, options, log, cancellationToken);
        }
        finally
        {
            if (created is not null)
            {
                created.Dispose();
                log($"removed network namespace {created.Name}");
            }
        }
    }

    // The TAP is persistent while the service runs, so that if this process dies the kernel keeps the interface (its
    // addresses, routes and sockets) for the next instance to adopt. A requested stop removes it unless Keep says not to;
    // a failure after the interface carried traffic leaves it for a restart; a failure before removes it.
    private static int Serve(DeviceLink link, TapServiceOptions options, Action<string> log, CancellationToken cancellationToken)
    {
        using TapInterface tap = TapInterface.Create(options.TapName, options.Namespace, link.Pairs, link.HeaderLength, options.Adopt);
        string instance = options.InstanceName ?? tap.Name;
        tap.SetPersistent(true);
        if (options.ControlDirectory is { } directory)
        {
            PersistentTap.WriteRecord(directory, instance, tap.Name, options.Namespace);
        }

        if (options.Adopt)
        {
            log($"adopted TAP {tap.Name}, left by an instance that died: the kernel kept its addresses, routes and sockets");
        }

        bool served = false;
        bool stopped = false;
        try
        {
            int exitCode = ServeTap(link, tap, options, () => served = true, log, cancellationToken);
            stopped = true;
            return exitCode;
        }
        finally
        {
            if (options.Keep || (served && !stopped))
            {
                log($"TAP {tap.Name} kept (a new vnet up --tap {tap.Name} adopts it; vnet down {instance} removes it)");
            }
            else
            {
                RemoveOnClose(tap, options, instance);
            }
        }
    }

    private static void RemoveOnClose(TapInterface tap, TapServiceOptions options, string instance)
    {
        try
        {
            tap.SetPersistent(false);
        }
        catch (ServiceException)
        {
            // The queues close next either way; a TAP that stays persistent is found and adopted or removed later.
        }

        if (options.ControlDirectory is { } directory)
        {
            PersistentTap.DeleteRecord(directory, instance);
        }
    }

    private static int ServeTap(DeviceLink link, TapInterface tap, TapServiceOptions options, Action serving, Action<string> log, CancellationToken cancellationToken)
    {
        string where = options.Namespace is null ? "" : $" in namespace {options.Namespace}";
        SetOffloads(tap, options.Offloads, log);
        using RouteNetlink netlink = RouteNetlink.Open(options.Namespace);
        byte[] mac = link.MacAddress;
        netlink.SetLink(tap.Index, mac, link.Mtu, up: true);
        log($"TAP {tap.Name}{where}: {link.Pairs} queue(s), MAC {FormatMac(mac)}, MTU {link.Mtu} (at most {link.MaxMtu}), vnet header {tap.HeaderLength} bytes, kernel offloads {(options.Offloads ? "on" : "off")}");
        log($"device: {link.Description}");

        WaitForLink(link, options.LinkTimeout, cancellationToken);
        tap.SetCarrier(true);
        var announcer = new Announcer();
        void OnLinkChanged(bool up, bool announce)
        {
            if (announce)
            {
                announcer.Request();
            }

            tap.SetCarrier(up);
            log($"link {(up ? "up" : "down")}{(announce ? " (the device asked for an announcement)" : "")}: carrier {(up ? "on" : "off")}");
        }

        // Link events come on the device's threads (a reconnection watcher among them), which outlive this method: the
        // handler goes with the TAP it sets the carrier of.
        link.LinkChanged += OnLinkChanged;
        try
        {
            return ServeTapWithCarrier(link, tap, options, netlink, announcer, where, serving, log, cancellationToken);
        }
        finally
        {
            link.LinkChanged -= OnLinkChanged;
        }
    }

    private static int ServeTapWithCarrier(DeviceLink link, TapInterface tap, TapServiceOptions options, RouteNetlink netlink, Announcer announcer, string where, Action serving, Action<string> log, CancellationToken cancellationToken)
    {

        if (options.Dhcp && options.Adopt)
        {
            log("DHCP skipped: the adopted interface kept its address and routes");
        }
        else if (options.Dhcp)
        {
            DhcpLease lease = link.AcquireLease(cancellationToken);
            int prefix = BitOperations.PopCount(BinaryPrimitives.ReadUInt32BigEndian(lease.SubnetMask.GetAddressBytes()));
            netlink.AddAddress(tap.Index, lease.Address, prefix);
            if (lease.Router is { } router)
            {
                netlink.AddDefaultRoute(tap.Index, router);
            }

            announcer.Add(lease.Address);
            log($"DHCP: {lease.Address}/{prefix} on {tap.Name}, default route via {lease.Router?.ToString() ?? "none"}");
        }

        DateTime started = DateTime.UtcNow;
        using var watcher = new LinkWatcher(link, tap, netlink, announcer, log);
        watcher.Start();
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Exception? failure = null;
        var pumps = new List<PairPump>(tap.Queues.Count);
        try
        {
            foreach (TapQueue queue in tap.Queues)
            {
                pumps.Add(new PairPump(link, queue, queue.Index == 0 ? announcer : null, log, e =>
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                    stopping.Cancel();
                }, stopping.Token, options.BurstSize, options.PairCpus is { } cpus && queue.Index < cpus.Count ? cpus[queue.Index] : null, options.DeviceReconnects));
            }

            foreach (PairPump pump in pumps)
            {
                pump.Start();
            }

            using var events = new ServiceEvents(link);
            string instance = options.InstanceName ?? tap.Name;
            using ControlServer? control = options.ControlDirectory is { } directory
                ? ControlServer.Start(directory, instance, (command, request) => Control(command, request, link, tap, options, pumps, started, log), log,
                    (command, request) => ObserveControl.Open(command, request, instance, link, events))
                : null;
            if (control is not null)
            {
                log($"control socket {control.SocketPath}");
            }

            serving();
            log($"{tap.Name} carries traffic{where} (Ctrl-C or SIGTERM to stop)");
            int exitCode = options.Exec is { } command ? RunCommand(command, options.Namespace, log, stopping.Token) : WaitForStop(stopping.Token);
            stopping.Cancel();
            if (failure is not null)
            {
                throw new ServiceException($"the pump stopped: {failure.Message}", failure);
            }

            return exitCode;
        }
        finally
        {
            stopping.Cancel();
            foreach (PairPump pump in pumps)
            {
                if (!pump.Join(TimeSpan.FromSeconds(10)))
                {
                    log($"queue pair pump did not stop within 10 s");
                }

                log($"queue {pumps.IndexOf(pump)}: {pump.Counters.Describe()}");
                pump.Dispose();
            }
        }
    }

    // The control socket's commands (docs/CONTROL.md).
    private static JsonObject Control(string command, JsonObject request, DeviceLink link, TapInterface tap, TapServiceOptions options, List<PairPump> pumps, DateTime started, Action<string> log) => command switch
    {
        "status" => new JsonObject
        {
            ["name"] = options.InstanceName ?? tap.Name,
            ["pid"] = Environment.ProcessId,
            ["device"] = link.Description,
            ["tap"] = tap.Name,
            ["namespace"] = options.Namespace,
            ["link"] = link.IsLinkUp ? "up" : "down",
            ["pairs"] = link.Pairs,
            ["mtu"] = link.Mtu,
            ["maxMtu"] = link.MaxMtu,
            ["mac"] = FormatMac(link.MacAddress),
            ["uptimeSeconds"] = (long)(DateTime.UtcNow - started).TotalSeconds,
        },
        "stats" => LiveCommands.Stats(link, new JsonObject { ["pairs"] = new JsonArray([.. pumps.Select((pump, i) => (JsonNode)PairStats(link, pump, i))]) }),
        "offloads" => LiveCommands.Offloads(link, request),
        "channels" => LiveCommands.Channels(link, request),
        "rss" => LiveCommands.Rss(link, request),
        "filter" => LiveCommands.Filter(link, request),
        "vlan" => LiveCommands.Vlan(link, request),
        "mtu" => LiveCommands.Mtu(link, tap, request),
        "dump" => LiveCommands.Dump(link),
        "recover" => ObserveControl.Recover(link),
        "suspend" => PowerControl.Suspend(link, tap, log),
        "resume" => PowerControl.Resume(link, tap, log),
        _ => throw new ServiceException($"unknown command '{command}' (known: status, stats, offloads, channels, rss, filter, vlan, mtu, dump, recover, suspend, resume, monitor, capture)"),
    };

    private static JsonObject PairStats(DeviceLink link, PairPump pump, int pair)
    {
        (VirtioNetQueueStatistics receive, VirtioNetQueueStatistics transmit) = link.PairStatistics(pair);
        PumpCounters counters = pump.Counters;
        var drops = new JsonObject();
        foreach (DropReason reason in Enum.GetValues<DropReason>())
        {
            drops[reason.ToString()] = counters.Drops(reason);
        }

        return new JsonObject
        {
            ["pair"] = pair,
            ["rxPackets"] = receive.Packets,
            ["rxBytes"] = receive.Bytes,
            ["rxDrops"] = receive.Drops,
            ["rxErrors"] = receive.Errors,
            ["txPackets"] = transmit.Packets,
            ["txBytes"] = transmit.Bytes,
            ["txDrops"] = transmit.Drops,
            ["txErrors"] = transmit.Errors,
            ["toKernelFrames"] = counters.ToKernelFrames,
            ["toKernelBytes"] = counters.ToKernelBytes,
            ["fromKernelFrames"] = counters.FromKernelFrames,
            ["fromKernelBytes"] = counters.FromKernelBytes,
            ["fromKernelLarge"] = counters.FromKernelLarge,
            ["ringFullWaits"] = counters.RingFullWaits,
            ["toKernelAllocatedBytes"] = counters.ToKernelAllocatedBytes,
            ["fromKernelAllocatedBytes"] = counters.FromKernelAllocatedBytes,
            ["serviceDrops"] = drops,
        };
    }

    private static void SetOffloads(TapInterface tap, bool enabled, Action<string> log)
    {
        uint flags = DeviceLink.KernelOffloads(enabled);
        try
        {
            tap.SetOffloads(flags);
        }
        catch (ServiceException e) when (e.Errno == Interop.Errno.EINVAL && (flags & (Interop.Tun.TUN_F_USO4 | Interop.Tun.TUN_F_USO6)) != 0)
        {
            // Kernels before 6.2 know no USO on a TAP.
            tap.SetOffloads(flags & ~(Interop.Tun.TUN_F_USO4 | Interop.Tun.TUN_F_USO6));
            log("this kernel's TAP takes no USO; UDP segments are cut by the kernel");
        }
    }

    private static void WaitForLink(DeviceLink link, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (!link.CheckLink())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (clock.Elapsed > timeout)
            {
                throw new ServiceException($"the device never showed link up within {timeout.TotalSeconds:0} s");
            }

            Thread.Sleep(50);
        }
    }

    private static int WaitForStop(CancellationToken stopping)
    {
        stopping.WaitHandle.WaitOne();
        return 0;
    }

    // The command runs in the namespace through ip netns exec, with the tool's own stdin, stdout and stderr.
    private static int RunCommand(string command, string? netns, Action<string> log, CancellationToken stopping)
    {
        var start = new ProcessStartInfo { UseShellExecute = false };
        if (netns is not null)
        {
            start.FileName = "ip";
            foreach (string argument in new[] { "netns", "exec", netns, "sh", "-c", command })
            {
                start.ArgumentList.Add(argument);
            }
        }
        else
        {
            start.FileName = "sh";
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(command);
        }

        log($"running: {command}");
        using Process process = Process.Start(start) ?? throw new ServiceException($"could not start: {command}");
        using (stopping.Register(() =>
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }))
        {
            process.WaitForExit();
        }

        log($"'{command}' exited with {process.ExitCode}");
        return process.ExitCode;
    }

    private static string FormatMac(byte[] mac) => string.Join(':', mac.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
}
