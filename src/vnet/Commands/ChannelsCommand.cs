using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet channels</c>: queue pairs, like <c>ethtool -l</c>; <c>--combined N</c> changes them, like <c>ethtool -L combined N</c>; with <c>--attach NAME</c> on the running instance.</summary>
internal static class ChannelsCommand
{
    private static readonly Option<int?> Combined = new("--combined", "-L")
    {
        Description = "Queue pairs to activate (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET), 1 to those set up (--queues).",
    };

    public static Command Create() =>
        DeviceVerb.Create(
            "channels",
            "Show (and with --combined change) the active queue pairs, as ethtool -l/-L does.",
            Execute,
            withQueues: true,
            Combined);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int? combined = result.GetValue(Combined);

        // The running device checks --combined against the pairs it set up.
        (JsonObject report, string device) = DeviceVerb.Report(result, "channels", _ => new JsonObject { ["combined"] = combined }, () =>
        {
            int queues = OneShotDevice.ReadQueues(result);
            if (combined is { } c && (c < 1 || c > queues))
            {
                throw new CliException($"--combined must be 1 to {queues} (the pairs set up with --queues); got {c}.");
            }

            using OneShotDevice session = OneShotDevice.Open(settings, queues, string.Empty, cancellationToken);
            return new DeviceLink(session.Net).Channels(combined);
        });

        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine($"Channel parameters for {device}:");
        Console.Out.WriteLine("Pre-set maximums:");
        Console.Out.WriteLine($"Combined:\t{report["maxCombined"]}");
        Console.Out.WriteLine("Current hardware settings:");
        Console.Out.WriteLine($"Combined:\t{report["combined"]}");
        return 0;
    }
}
