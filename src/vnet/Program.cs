using System.CommandLine;
using VirtioNet.Cli;
using VirtioNet.Cli.Commands;

var root = new RootCommand("vnet: the VirtioNet driver against QEMU's virtio-net (riscv64 virt, x86_64 q35) and vhost-user backends.");
root.Subcommands.Add(ProbeCommand.Create());
root.Subcommands.Add(PingCommand.Create());
root.Subcommands.Add(DumpCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(OffloadsCommand.Create());
root.Subcommands.Add(StatsCommand.Create());
root.Subcommands.Add(ChannelsCommand.Create());
root.Subcommands.Add(RssCommand.Create());
root.Subcommands.Add(FilterCommand.Create());
root.Subcommands.Add(VlanCommand.Create());
root.Subcommands.Add(MtuCommand.Create());
root.Subcommands.Add(UpCommand.Create());
root.Subcommands.Add(ListCommand.Create());
root.Subcommands.Add(MachineCommand.Create());
root.Subcommands.Add(DownCommand.Create());
root.Subcommands.Add(ConfigCommand.Create());
CommonOptions.LogLevel.AcceptOnlyFromAmong([.. Log.Levels.Keys]);
root.Options.Add(CommonOptions.LogLevel);
root.Subcommands.Add(MonitorCommand.Create());
root.Subcommands.Add(CaptureCommand.Create());
root.Subcommands.Add(TopCommand.Create());
root.Subcommands.Add(PowerCommand.CreateSuspend());
root.Subcommands.Add(PowerCommand.CreateResume());

ParseResult parsed = root.Parse(args);
try
{
    if (parsed.Errors.Count > 0)
    {
        // One clear line instead of the parser's error list and full help text.
        Log.Error($"{parsed.Errors[0].Message} (see 'vnet --help')");
        return CommandRunner.Usage;
    }

    if (parsed.GetValue(CommonOptions.LogLevel) is { } level)
    {
        Log.Configure(Log.Levels[level]);
    }

    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
}
finally
{
    // The console logger writes from a queue of its own: what is queued goes out before the process ends.
    Log.Flush();
}
