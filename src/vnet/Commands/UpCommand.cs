using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using VirtioNet.Cli.Config;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using VirtioNet.VhostUser;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet up</c>: the driver as a long-lived process presenting its device to the kernel as a TAP interface. Parses,
/// opens the device (a QEMU machine or a vhost-user backend), and hands it to <see cref="TapService"/>. With
/// <c>--config FILE</c> the settings come from virtio-net.toml first and the flags given on the command line override them.
/// </summary>
internal static class UpCommand
{
    private static readonly Option<string?> Name = new("--name") { Description = "The instance's name (default: the TAP's name)." };

    private static readonly Option<string> Tap = new("--tap") { Description = "The TAP interface to create (at most 15 bytes; must not exist).", DefaultValueFactory = _ => "vnet0" };

    private static readonly Option<string?> Netns = new("--netns") { Description = "Create the TAP in this network namespace (ip netns); it must exist unless --exec is given, which creates and removes it." };

    private static readonly Option<bool> Dhcp = new("--dhcp") { Description = "Configure the interface's address and default route by DHCP on the device's network." };

    private static readonly Option<string> Offloads = new("--offloads") { Description = "on: the kernel hands over partial checksums and TSO/USO segments (TUNSETOFFLOAD); off: finished frames only.", DefaultValueFactory = _ => "on" };

    private static readonly Option<string?> Exec = new("--exec") { Description = "Run this shell command in the namespace once the interface carries traffic, then tear everything down; the exit code is the command's." };

    private static readonly Option<double> LinkTimeout = new("--link-timeout") { Description = "Seconds to wait for the device's link before giving up.", DefaultValueFactory = _ => 10.0 };

    private static readonly Option<int> MaxMtu = new("--max-mtu")
    {
        Description = "For a device that reports no MTU (no VIRTIO_NET_F_MTU, e.g. any vhost-user backend): the largest MTU 'ip link set mtu' may set, which the driver sizes its buffers for (68 to 65535; 9000 for jumbo frames). A device that reports one bounds the MTU itself.",
        DefaultValueFactory = _ => 1500,
    };

    private static readonly Option<string?> VhostUser = new("--vhost-user") { Description = "Drive the vhost-user backend on this unix socket instead of a QEMU machine." };

    private static readonly Option<bool> VhostUserClient = new("--vhost-user-client") { Description = "Listen on the --vhost-user path and let the backend connect (OVS dpdkvhostuserclient, testpmd client=1)." };

    private static readonly Option<string> Netdev = new("--netdev") { Description = "QEMU's network backend for the device: user (QEMU's user network, 10.0.2.0/24), tap=IFNAME (an existing or new host TAP), socket=OPTIONS (-netdev socket,OPTIONS).", DefaultValueFactory = _ => "user" };

    private static readonly Option<string?> MachineName = new("--machine-name") { Description = "Drive the QEMU machine 'vnet machine start NAME' started (it outlives this process: a new vnet up attaches to it again)." };

    private static readonly Option<bool> Keep = new("--keep") { Description = "Keep the TAP at a clean stop too (for a planned restart); 'vnet down NAME' removes it." };

    private static readonly Option<bool> Supervise = new("--supervise") { Description = "Run the service as a worker process and start it again whenever it dies (with backoff); SIGINT and SIGTERM are passed on." };

    private static readonly Option<string?> ConfigFile = new("--config") { Description = "Read the configuration file (virtio-net.toml: [device], [performance], [debug], [platform]; docs/virtio-net.toml lists every key); flags given on the command line override it." };

    public static Command Create()
    {
        var command = new Command("up", "Serve the device to the kernel as a TAP interface until Ctrl-C or SIGTERM (or until --exec's command ends).");
        Offloads.AcceptOnlyFromAmong("on", "off");
        foreach (Option option in new Option[] { ConfigFile, Name, Tap, Netns, OneShotDevice.Queues, Dhcp, Offloads, Exec, LinkTimeout, MaxMtu, VhostUser, VhostUserClient, Netdev, MachineName, Keep, Supervise })
        {
            command.Options.Add(option);
        }

        CommonOptions.AddTo(command);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        if (result.GetValue(Supervise))
        {
            return Supervisor.Run(result.GetValue(Exec) is null, cancellationToken);
        }

        VnetConfig file = new();
        if (result.GetValue(ConfigFile) is { } path)
        {
            (file, IReadOnlyList<ConfigError> errors) = ConfigReader.ReadFile(path);
            if (ConfigCommand.Report(errors))
            {
                Log.Error($"{path}: nothing started");
                return CommandRunner.Usage;
            }
        }

        if (file.LogLevel is { } level && !Given(result, CommonOptions.LogLevel))
        {
            Log.Configure(Log.Levels[level]);
        }

        settings = WithFile(settings, result, file);
        int queues = Given(result, OneShotDevice.Queues) ? OneShotDevice.ReadQueues(result) : file.QueuePairs ?? OneShotDevice.ReadQueues(result);
        double linkTimeout = result.GetValue(LinkTimeout);
        if (linkTimeout is <= 0 or > 3600 || double.IsNaN(linkTimeout))
        {
            throw new CliException($"--link-timeout must be above 0 and at most 3600 seconds; got {linkTimeout}.");
        }

        int maxMtu = result.GetValue(MaxMtu);
        if (maxMtu is < EthernetFrame.MinimumMtu or > ushort.MaxValue)
        {
            throw new CliException($"--max-mtu must be {EthernetFrame.MinimumMtu} to 65535; got {maxMtu}.");
        }

        string? exec = result.GetValue(Exec);
        var options = new TapServiceOptions
        {
            TapName = Pick(result, Tap, file.Tap) ?? "vnet0",
            Namespace = Pick(result, Netns, file.Namespace),
            CreateNamespace = exec is not null,
            Dhcp = Pick(result, Dhcp, file.Dhcp),
            Offloads = Given(result, Offloads) ? result.GetValue(Offloads) != "off" : file.KernelOffloads ?? true,
            LinkTimeout = TimeSpan.FromSeconds(linkTimeout),
            Exec = exec,
            Keep = result.GetValue(Keep),
            BurstSize = file.BurstSize ?? DeviceLink.PairPort.DefaultBurst,
            PairCpus = file.PairCpus,
        };
        string instance = Pick(result, Name, file.Name) ?? options.TapName;
        options = options with { InstanceName = instance, ControlDirectory = ControlServer.DefaultDirectory };
        string? vhostUser = Given(result, VhostUser) ? result.GetValue(VhostUser) : file.Backend == "vhost-user" ? file.VhostUserSocket : null;
        bool vhostUserListen = Given(result, VhostUserClient) ? result.GetValue(VhostUserClient) : file.VhostUserListen ?? false;
        if (vhostUser is null && vhostUserListen)
        {
            throw new CliException("--vhost-user-client needs --vhost-user PATH.");
        }

        MachineRecord? machine = null;
        if (result.GetValue(MachineName) is { } machineName)
        {
            machine = AttachableMachine(machineName, vhostUser);
        }
        else if (vhostUser is null)
        {
            settings = settings with { Netdev = QemuNetdev(Pick(result, Netdev, file.Netdev) ?? "user", queues), DeviceOptions = queues > 1 ? Join(settings.DeviceOptions, "mq=on") : settings.DeviceOptions };
        }

        // The features left out of negotiation: those withheld by name, those behind offloads turned off, and packed
        // rings when the file asks for split ones.
        VirtioFeatureSet withheld = (file.WithheldFeatures ?? VirtioFeatureSet.None) | (file.OffloadsOff ?? VirtioFeatureSet.None) |
            (file.RingLayout == "split" ? VirtioFeatureSet.FromUInt64(VirtioFeatures.RingPacked) : VirtioFeatureSet.None);
        try
        {
            using InstanceLock instanceLock = InstanceLock.Acquire(ControlServer.DefaultDirectory, instance);
            options = TapService.Preflight(options);
            var netOptions = new VirtioNetOptions
            {
                OperationMode = settings.Mode,
                BusyPollBudget = file.BusyPollBudget is int budget and > 0 ? budget : new VirtioNetOptions().BusyPollBudget,
                AutoRecover = true,
                QueuePairs = queues,
                MaxMtu = maxMtu,
                MaxQueueSize = file.RingSize ?? new VirtioNetOptions().MaxQueueSize,
                DisabledFeatures = withheld.Low,
                DisabledFeaturesHigh = withheld.High,
            };
            Log.Info($"{instance}: starting");
            if (vhostUser is not null)
            {
                var vhost = new VhostUserOptions
                {
                    SocketPath = vhostUser,
                    SocketMode = vhostUserListen ? VhostUserSocketMode.Listen : VhostUserSocketMode.Connect,
                    QueuePairs = queues,

                    // A backend that connects to us (OVS's dpdkvhostuserclient port) retries once a second.
                    ConnectTimeout = TimeSpan.FromSeconds(15),

                    // A backend that goes away (an OVS port deleted and added again, a switch restarted) gets the same
                    // device back when it returns: the TAP's carrier follows the link meanwhile.
                    AutoReconnect = true,
                };
                using VhostUserNetDevice session = VhostUserNetDevice.Open(vhost, netOptions, cancellationToken: cancellationToken);
                return Serve(session.Device, options with { DeviceReconnects = true }, file, cancellationToken);
            }

            using IQemuBoard board = machine is null
                ? Boards.Start(settings, cancellationToken)
                : Boards.Attach(machine.Settings with { Mode = settings.Mode }, machine.Detached, cancellationToken);
            using VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, netOptions);
            return Serve(net, options, file, cancellationToken);
        }
        catch (ServiceException e)
        {
            throw new CliException(e.Message, e);
        }
    }

    private static int Serve(VirtioNetDevice device, TapServiceOptions options, VnetConfig file, CancellationToken cancellationToken)
    {
        var link = new DeviceLink(device);
        try
        {
            // Both 0 (the defaults) is no coalescing, which a device starts with: nothing is sent.
            (uint, uint)? receive = (file.RxCoalesceFrames ?? 0, file.RxCoalesceMicroseconds ?? 0);
            (uint, uint)? transmit = (file.TxCoalesceFrames ?? 0, file.TxCoalesceMicroseconds ?? 0);
            link.SetCoalescing(receive == (0, 0) ? null : receive, transmit == (0, 0) ? null : transmit);
            int exitCode = TapService.Run(link, options, Log.Info, cancellationToken);
            Log.Info(options.Keep ? "stopped; TAP kept" : "stopped; TAP removed");
            return exitCode;
        }
        catch (Exception e) when (file.RegisterDumpOnError == true && e is not OperationCanceledException)
        {
            // [debug] register_dump_on_error: the device as it was when the service failed, as 'vnet dump --json' gives it.
            Log.Error($"{e.Message}; the device at the failure: {link.Dump().ToJsonString()}");
            throw;
        }
    }

    // A flag given on the command line wins; otherwise the file's value; otherwise the flag's default.
    private static T? Pick<T>(ParseResult result, Option<T> option, T? fromFile) =>
        Given(result, option) ? result.GetValue(option) : fromFile ?? result.GetValue(option);

    private static bool Pick(ParseResult result, Option<bool> option, bool? fromFile) =>
        Given(result, option) ? result.GetValue(option) : fromFile ?? result.GetValue(option);

    private static bool Given(ParseResult result, Option option) => result.GetResult(option) is OptionResult { Implicit: false };

    // The machine and device settings: flags given win over the file's [device], [performance] and [platform] keys.
    internal static MachineSettings WithFile(MachineSettings settings, ParseResult result, VnetConfig file)
    {
        string machine = Given(result, CommonOptions.Machine) ? settings.MachineName : file.Machine ?? settings.MachineName;
        string transport = Given(result, CommonOptions.Transport) ? settings.Transport : file.Transport ?? settings.Transport;
        if (machine == "x86_64-q35" && transport is not ("pci" or "pci-legacy"))
        {
            throw new CliException($"machine x86_64-q35 has no virtio-mmio slots: use transport pci or pci-legacy (got {transport}).");
        }

        // The device's properties: the file's own, then what its [device] keys ask of QEMU; --device-opts replaces the file's own.
        var properties = new List<string> { Given(result, CommonOptions.DeviceOpts) ? settings.DeviceOptions : file.DeviceProperties ?? settings.DeviceOptions };
        if (file.Mac is { } mac)
        {
            properties.Add($"mac={mac}");
        }

        if (file.Mtu is { } mtu)
        {
            properties.Add(string.Create(CultureInfo.InvariantCulture, $"host_mtu={mtu}"));
        }

        if (file.RingLayout == "packed")
        {
            properties.Add("packed=on");
        }

        return settings with
        {
            Machine = machine == "x86_64-q35" ? QemuMachineKind.X86Q35 : QemuMachineKind.RiscvVirt,
            Transport = transport,
            ModernMmio = transport == "mmio",
            PciInterrupts = Given(result, CommonOptions.PciInterrupts) ? settings.PciInterrupts : file.PciInterrupts ?? settings.PciInterrupts,
            DeviceOptions = string.Join(',', properties.Where(p => p.Length > 0)),
            Mode = Given(result, CommonOptions.Mode) || file.Mode is null ? settings.Mode : CommonOptions.ParseMode(file.Mode),
            QemuPath = Given(result, CommonOptions.Qemu) ? settings.QemuPath : file.Qemu ?? settings.QemuPath,
        };
    }

    // --machine-name: the machine must be recorded and its QEMU running; the driver lock (taken when attaching) says
    // whether another vnet up drives it.
    private static MachineRecord AttachableMachine(string name, string? vhostUser)
    {
        if (vhostUser is not null)
        {
            throw new CliException("--machine-name and --vhost-user name two different devices: give one.");
        }

        MachineRecord machine = MachineRecord.Find(name) ?? throw new CliException($"no machine named '{name}' (start one with 'vnet machine start {name}')");
        if (!QemuMachine.IsRunning(machine.Detached))
        {
            throw new CliException($"machine '{name}' is not running (its QEMU pid {machine.Detached.ProcessId} exited; 'vnet machine stop {name}' removes its record)");
        }

        if (QemuMachine.FindDriver(machine.Detached) is { } driver)
        {
            throw new CliException($"machine '{name}' already has a driver (pid {driver})");
        }

        return machine;
    }

    // --netdev as QEMU's -netdev argument; a TAP backend gets a vnet header (so QEMU offers offloads) and the queues.
    internal static string QemuNetdev(string value, int queues)
    {
        if (value == "user")
        {
            if (queues > 1)
            {
                throw new CliException("QEMU's user network has one queue; --queues above 1 needs --netdev tap=IFNAME or --vhost-user.");
            }

            return "user,id=n0";
        }

        if (value.StartsWith("tap=", StringComparison.Ordinal) && value.Length > 4)
        {
            string ifname = value[4..];
            TapInterface.CheckName(ifname);
            return string.Create(CultureInfo.InvariantCulture, $"tap,id=n0,ifname={ifname},script=no,downscript=no,vnet_hdr=on{(queues > 1 ? $",queues={queues}" : "")}");
        }

        if (value.StartsWith("socket=", StringComparison.Ordinal) && value.Length > 7)
        {
            return $"socket,id=n0,{value[7..]}";
        }

        throw new CliException($"--netdev must be user, tap=IFNAME or socket=OPTIONS; got '{value}'.");
    }

    private static string Join(string a, string b) => a.Length == 0 ? b : $"{a},{b}";
}
