using System.CommandLine;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet down NAME</c>: removes the TAP an instance kept (<c>vnet up --keep</c>) or left when it died. A running
/// instance is stopped with SIGTERM instead, and is refused here.
/// </summary>
internal static class DownCommand
{
    private static readonly Argument<string> Name = new("NAME") { Description = "The instance's name (vnet up --name, by default its TAP's name)." };

    public static Command Create()
    {
        var command = new Command("down", "Remove the TAP a stopped 'vnet up' instance kept (--keep) or left when it died.");
        command.Arguments.Add(Name);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(ParseResult result, CancellationToken cancellationToken)
    {
        string name = result.GetValue(Name)!;
        try
        {
            if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
            {
                throw new CliException($"instance name '{name}' is not valid");
            }

            using InstanceLock instanceLock = InstanceLock.Acquire(ControlServer.DefaultDirectory, name);
            (string tap, string? netns) = PersistentTap.ReadRecord(ControlServer.DefaultDirectory, name)
                ?? throw new CliException($"instance '{name}' left no interface to remove ('vnet list' shows the running instances)");
            string where = netns is null ? "" : $" in namespace {netns}";
            if (netns is not null && !File.Exists(Path.Combine("/run/netns", netns)))
            {
                PersistentTap.DeleteRecord(ControlServer.DefaultDirectory, name);
                throw new CliException($"instance '{name}' recorded TAP {tap}{where}, but the namespace is gone (and the TAP with it); the record is removed");
            }

            switch (PersistentTap.Find(tap, netns, out string holder))
            {
                case PersistentTap.Holder.Nobody:
                    PersistentTap.DeleteRecord(ControlServer.DefaultDirectory, name);
                    throw new CliException($"instance '{name}' recorded TAP {tap}{where}, which no longer exists; the record is removed");
                case PersistentTap.Holder.Other:
                    throw new CliException($"TAP {tap}{where} is not one a stopped instance left ({holder}); nothing removed");
                default:
                    // A single queue with any header length: the kernel removes the interface when it closes.
                    PersistentTap.Remove(tap, netns, headerLength: 12);
                    PersistentTap.DeleteRecord(ControlServer.DefaultDirectory, name);
                    Log.Info($"removed TAP {tap}{where}");
                    return 0;
            }
        }
        catch (ServiceException e)
        {
            throw new CliException(e.Message, e);
        }
    }
}
