using System.CommandLine;
using System.Text.Json.Nodes;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet channels</c>: queue pairs, like <c>ethtool -l</c>; <c>--combined N</c> changes them, like <c>ethtool -L combined N</c>.</summary>
internal static class ChannelsCommand
{
    private static readonly Option<int?> Combined = new("--combined", "-L")
    {
        Description = "Queue pairs to activate (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET), 1 to those set up (--queues).",
    };

    public static Command Create()
    {
        var command = new Command("channels", "Show (and with --combined change) the active queue pairs, as ethtool -l/-L does.");
        command.Options.Add(Combined);
        command.Options.Add(NetDeviceSession.Queues);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int queues = NetDeviceSession.ReadQueues(result);
        int? combined = result.GetValue(Combined);
        if (combined is { } c && (c < 1 || c > queues))
        {
            throw new CliException($"--combined must be 1 to {queues} (the pairs set up with --queues); got {c}.");
        }

        using NetDeviceSession session = NetDeviceSession.Open(settings, queues, string.Empty, cancellationToken);
        if (combined is { } pairs)
        {
            session.Net.Control.SetActiveQueuePairs(pairs);
        }

        if (settings.Json)
        {
            Console.Out.WriteLine(new JsonObject
            {
                ["maxCombined"] = session.Net.Config.MaxVirtqueuePairs,
                ["setUp"] = session.Net.Pairs.Count,
                ["combined"] = session.Net.Control.ActiveQueuePairs,
            }.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine("Channel parameters for net0:");
        Console.Out.WriteLine("Pre-set maximums:");
        Console.Out.WriteLine($"Combined:\t{session.Net.Config.MaxVirtqueuePairs}");
        Console.Out.WriteLine("Current hardware settings:");
        Console.Out.WriteLine($"Combined:\t{session.Net.Control.ActiveQueuePairs}");
        return 0;
    }
}
