using System.CommandLine;
using System.Globalization;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using VirtioNet.VhostUser;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet up</c>: the driver as a long-lived process presenting its device to the kernel as a TAP interface. Parses,
/// opens the device (a QEMU machine or a vhost-user backend), and hands it to <see cref="TapService"/>.
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

    private static readonly Option<string?> VhostUser = new("--vhost-user") { Description = "Drive the vhost-user backend on this unix socket instead of a QEMU machine." };

    private static readonly Option<bool> VhostUserClient = new("--vhost-user-client") { Description = "Listen on the --vhost-user path and let the backend connect (OVS dpdkvhostuserclient, testpmd client=1)." };

    private static readonly Option<string> Netdev = new("--netdev") { Description = "QEMU's network backend for the device: user (QEMU's user network, 10.0.2.0/24), tap=IFNAME (an existing or new host TAP), socket=OPTIONS (-netdev socket,OPTIONS).", DefaultValueFactory = _ => "user" };

    public static Command Create()
    {
        var command = new Command("up", "Serve the device to the kernel as a TAP interface until Ctrl-C or SIGTERM (or until --exec's command ends).");
        Offloads.AcceptOnlyFromAmong("on", "off");
        foreach (Option option in new Option[] { Name, Tap, Netns, NetDeviceSession.Queues, Dhcp, Offloads, Exec, LinkTimeout, VhostUser, VhostUserClient, Netdev })
        {
            command.Options.Add(option);
        }

        CommonOptions.AddTo(command);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int queues = NetDeviceSession.ReadQueues(result);
        double linkTimeout = result.GetValue(LinkTimeout);
        if (linkTimeout is <= 0 or > 3600 || double.IsNaN(linkTimeout))
        {
            throw new CliException($"--link-timeout must be above 0 and at most 3600 seconds; got {linkTimeout}.");
        }

        string? exec = result.GetValue(Exec);
        var options = new TapServiceOptions
        {
            TapName = result.GetValue(Tap) ?? "vnet0",
            Namespace = result.GetValue(Netns),
            CreateNamespace = exec is not null,
            Dhcp = result.GetValue(Dhcp),
            Offloads = result.GetValue(Offloads) != "off",
            LinkTimeout = TimeSpan.FromSeconds(linkTimeout),
            Exec = exec,
        };
        string instance = result.GetValue(Name) ?? options.TapName;
        options = options with { InstanceName = instance, ControlDirectory = ControlServer.DefaultDirectory };
        string? vhostUser = result.GetValue(VhostUser);
        if (vhostUser is null && result.GetValue(VhostUserClient))
        {
            throw new CliException("--vhost-user-client needs --vhost-user PATH.");
        }

        if (vhostUser is null)
        {
            settings = settings with { Netdev = QemuNetdev(result.GetValue(Netdev) ?? "user", queues), DeviceOptions = queues > 1 ? Join(settings.DeviceOptions, "mq=on") : settings.DeviceOptions };
        }

        try
        {
            TapService.Preflight(options);
            var netOptions = new VirtioNetOptions { OperationMode = settings.Mode, QueuePairs = queues, AutoRecover = true };
            Log.Info($"{instance}: starting");
            if (vhostUser is not null)
            {
                var vhost = new VhostUserOptions
                {
                    SocketPath = vhostUser,
                    SocketMode = result.GetValue(VhostUserClient) ? VhostUserSocketMode.Listen : VhostUserSocketMode.Connect,
                    QueuePairs = queues,

                    // A backend that connects to us (OVS's dpdkvhostuserclient port) retries once a second.
                    ConnectTimeout = TimeSpan.FromSeconds(15),
                };
                using VhostUserSession session = VhostUserSession.Open(vhost, netOptions, cancellationToken: cancellationToken);
                return Serve(session.Device, options, cancellationToken);
            }

            using IQemuBoard board = Boards.Start(settings, cancellationToken);
            using VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, netOptions);
            return Serve(net, options, cancellationToken);
        }
        catch (ServiceException e)
        {
            throw new CliException(e.Message, e);
        }
    }

    private static int Serve(VirtioNetDevice device, TapServiceOptions options, CancellationToken cancellationToken)
    {
        int exitCode = TapService.Run(new DeviceLink(device), options, Log.Info, cancellationToken);
        Log.Info("stopped; TAP removed");
        return exitCode;
    }

    // --netdev as QEMU's -netdev argument; a TAP backend gets a vnet header (so QEMU offers offloads) and the queues.
    private static string QemuNetdev(string value, int queues)
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
