using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using VirtioNet.Net;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet stats</c>: per-queue counters, like <c>ethtool -S</c>, after receiving for <c>--seconds</c>.</summary>
internal static class StatsCommand
{
    private static readonly Option<double> Seconds = new("--seconds")
    {
        Description = "Receive (and drop) whatever arrives on every queue for this long before printing. Default 0.",
        DefaultValueFactory = _ => 0,
    };

    public static Command Create()
    {
        var command = new Command("stats", "Show the driver's per-queue statistics, as ethtool -S does.");
        command.Options.Add(Seconds);
        command.Options.Add(NetDeviceSession.Queues);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int queues = NetDeviceSession.ReadQueues(result);
        double seconds = result.GetValue(Seconds);
        if (seconds is < 0 or > 3600 || double.IsNaN(seconds))
        {
            throw new CliException($"--seconds must be 0 to 3600; got {seconds}.");
        }

        using NetDeviceSession session = NetDeviceSession.Open(settings, queues, string.Empty, cancellationToken);
        VirtioNetDevice net = session.Net;
        byte[] buffer = new byte[net.MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool any = false;
            for (int pair = 0; pair < net.QueuePairs; pair++)
            {
                while (net.TryReceive(pair, buffer, out _))
                {
                    any = true;
                }
            }

            if (!any)
            {
                Thread.Sleep(1);
            }
        }

        IEnumerable<(string Prefix, VirtioNetQueueStatistics Stats)> all =
            net.ReceiveQueues.Select((q, i) => ($"rx_queue_{i}", q.Statistics))
                .Concat(net.TransmitQueues.Select((q, i) => ($"tx_queue_{i}", q.Statistics)));
        if (settings.Json)
        {
            Console.Out.WriteLine(new JsonObject
            {
                ["queues"] = new JsonArray([.. all.Select(q => (JsonNode)new JsonObject
                {
                    ["name"] = q.Stats.Name,
                    ["packets"] = q.Stats.Packets,
                    ["bytes"] = q.Stats.Bytes,
                    ["drops"] = q.Stats.Drops,
                    ["errors"] = q.Stats.Errors,
                    ["notifications"] = q.Stats.Notifications,
                    ["interrupts"] = q.Stats.Interrupts,
                })]),
                ["configurationInterrupts"] = net.ConfigurationInterrupts,
                ["recoveries"] = net.Recoveries,
                ["recoveryDroppedTransmits"] = net.RecoveryDroppedTransmits,
                ["controlCommandsCompleted"] = net.ControlQueue?.CommandsCompleted ?? 0,
                ["controlCommandsRejected"] = net.ControlQueue?.CommandsRejected ?? 0,
            }.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine("NIC statistics:");
        foreach ((string prefix, VirtioNetQueueStatistics stats) in all)
        {
            Console.Out.WriteLine($"     {prefix}_packets: {stats.Packets}");
            Console.Out.WriteLine($"     {prefix}_bytes: {stats.Bytes}");
            Console.Out.WriteLine($"     {prefix}_drops: {stats.Drops}");
            Console.Out.WriteLine($"     {prefix}_errors: {stats.Errors}");
            Console.Out.WriteLine($"     {prefix}_kicks: {stats.Notifications}");
            Console.Out.WriteLine($"     {prefix}_interrupts: {stats.Interrupts}");
        }

        Console.Out.WriteLine($"     recoveries: {net.Recoveries}");
        Console.Out.WriteLine($"     recovery_dropped_transmits: {net.RecoveryDroppedTransmits}");

        return 0;
    }
}
