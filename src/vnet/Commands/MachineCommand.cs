using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using VirtioNet.Qemu;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet machine start|stop|list</c>: QEMU machines that outlive their driver. <c>start</c> runs QEMU detached with its
/// guest RAM and qtest socket waiting for a driver and records it under /run/vnet/machines/NAME; <c>vnet up
/// --machine-name NAME</c> drives it, and a new <c>vnet up</c> after the last one died attaches to it again.
/// </summary>
internal static class MachineCommand
{
    private static readonly Argument<string> Name = new("NAME") { Description = "The machine's name (letters, digits, '.', '_', '-'; at most 32)." };

    private static readonly Option<string> Netdev = new("--netdev") { Description = "QEMU's network backend for the device: user, tap=IFNAME or socket=OPTIONS (as vnet up).", DefaultValueFactory = _ => "user" };

    private static readonly Option<bool> Force = new("--force") { Description = "Stop the machine even while a vnet up drives it." };

    private static readonly Option<bool> JsonOutput = new("--json") { Description = "One JSON array of the machines." };

    public static Command Create()
    {
        var command = new Command("machine", "QEMU machines that outlive their driver: start, stop, list.");

        var start = new Command("start", "Start a QEMU machine detached: its guest RAM and qtest socket wait for 'vnet up --machine-name NAME'.");
        start.Arguments.Add(Name);
        start.Options.Add(Netdev);
        start.Options.Add(OneShotDevice.Queues);
        CommonOptions.AddTo(start, includeOperationMode: false);
        CommandRunner.SetAction(start, Start);

        var stop = new Command("stop", "Stop a machine started with 'vnet machine start' and remove its files.");
        stop.Arguments.Add(Name);
        stop.Options.Add(Force);
        CommandRunner.SetAction(stop, Stop);

        var list = new Command("list", "List the machines started with 'vnet machine start', their QEMU and their driver.");
        list.Options.Add(JsonOutput);
        CommandRunner.SetAction(list, List);

        command.Subcommands.Add(start);
        command.Subcommands.Add(stop);
        command.Subcommands.Add(list);
        return command;
    }

    private static int Start(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        string name = result.GetValue(Name)!;
        MachineRecord.CheckName(name);
        if (settings.BaseAddress is not null)
        {
            throw new CliException("--base chooses the device a driver drives: give it to vnet up, not to vnet machine start.");
        }

        int queues = OneShotDevice.ReadQueues(result);
        settings = settings with
        {
            Netdev = UpCommand.QemuNetdev(result.GetValue(Netdev) ?? "user", queues),
            DeviceOptions = queues > 1 ? $"{(settings.DeviceOptions.Length == 0 ? "" : settings.DeviceOptions + ",")}mq=on" : settings.DeviceOptions,
        };
        QemuMachineOptions options = Boards.CreateOptions(settings);

        if (MachineRecord.Find(name) is { } existing)
        {
            if (QemuMachine.IsRunning(existing.Detached))
            {
                throw new CliException($"machine '{name}' is already running (QEMU pid {existing.Detached.ProcessId}); 'vnet machine stop {name}' ends it");
            }

            // Its QEMU died: what it left is removed, and the name is free again.
            QemuMachine.Stop(existing.Detached, TimeSpan.FromSeconds(5));
            Log.Info($"removed the record of machine '{name}', whose QEMU (pid {existing.Detached.ProcessId}) had exited");
        }

        string directory = MachineRecord.DirectoryOf(name);
        Directory.CreateDirectory(MachineRecord.Root);
        if (!OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        Log.Info($"starting QEMU {settings.MachineName} ({settings.TransportName}, -netdev {settings.Netdev}) detached as machine '{name}'");
        DetachedQemuMachine detached;
        try
        {
            detached = QemuMachine.Launch(options, directory, cancellationToken);
        }
        catch
        {
            TryDeleteDirectory(directory);
            throw;
        }

        new MachineRecord(name, detached, settings, DateTime.UtcNow).Save();
        Log.Info($"machine '{name}' running: QEMU pid {detached.ProcessId}, guest RAM {detached.RamPath}, qtest {detached.QtestSocket}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} {detached.ProcessId}"));
        return 0;
    }

    private static int Stop(ParseResult result, CancellationToken cancellationToken)
    {
        string name = result.GetValue(Name)!;
        MachineRecord record = MachineRecord.Find(name) ?? throw new CliException($"no machine named '{name}' ('vnet machine list' shows them)");
        bool running = QemuMachine.IsRunning(record.Detached);
        if (running && QemuMachine.FindDriver(record.Detached) is { } driver && !result.GetValue(Force))
        {
            throw new CliException($"machine '{name}' is driven by pid {driver}: stop that vnet up first, or give --force");
        }

        if (!QemuMachine.Stop(record.Detached, TimeSpan.FromSeconds(10)))
        {
            Log.Error($"QEMU pid {record.Detached.ProcessId} of machine '{name}' did not exit");
            return CommandRunner.Failure;
        }

        File.Delete(Path.Combine(MachineRecord.DirectoryOf(name), "machine.json"));
        TryDeleteDirectory(MachineRecord.DirectoryOf(name));
        Log.Info(running ? $"machine '{name}' stopped (QEMU pid {record.Detached.ProcessId})" : $"machine '{name}' had exited; its files are removed");
        return 0;
    }

    private static int List(ParseResult result, CancellationToken cancellationToken)
    {
        var machines = new JsonArray();
        foreach (MachineRecord record in MachineRecord.All())
        {
            bool running = QemuMachine.IsRunning(record.Detached);
            machines.Add((JsonNode)record.Describe(running, running ? QemuMachine.FindDriver(record.Detached) : null));
        }

        Json.WriteListing(
            machines,
            result.GetValue(JsonOutput),
            string.Create(CultureInfo.InvariantCulture, $"{"NAME",-16} {"PID",8} {"STATE",-8} {"DRIVER",8} {"MACHINE",-13} {"TRANSPORT",-11} NETDEV"),
            m => string.Create(CultureInfo.InvariantCulture,
                $"{m["name"],-16} {m["pid"],8} {m["state"],-8} {m["driverPid"]?.ToString() ?? "-",8} {m["machine"],-13} {m["transport"],-11} {m["netdev"]}"));
        return 0;
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Info($"could not remove {directory}: {e.Message}");
        }
    }
}
