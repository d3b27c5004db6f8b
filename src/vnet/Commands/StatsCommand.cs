using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Statistics;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet stats</c>: per-queue counters, like <c>ethtool -S</c>, after receiving for <c>--seconds</c>; with
/// VIRTIO_NET_F_DEVICE_STATS negotiated also the device's own counters (the <c>hw_</c> names, as Linux prints them).
/// </summary>
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
        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool any = false;
            for (int pair = 0; pair < net.Pairs.Count; pair++)
            {
                while (net.Pairs[pair].TryReceive(buffer, out _))
                {
                    any = true;
                }
            }

            if (!any)
            {
                Thread.Sleep(1);
            }
        }

        // The device's own counters, when it keeps them. A device that answers badly does not hide the driver's counters:
        // they are printed, the failure is reported on stderr and the exit code says so.
        DeviceStatistics? device = null;
        string? deviceError = null;
        if (net.Control.HasDeviceStatistics)
        {
            try
            {
                device = net.Control.GetDeviceStatistics();
            }
            catch (VirtioException e)
            {
                deviceError = e.Message;
            }
        }

        IEnumerable<(string Prefix, VirtioNetQueueStatistics Stats)> all =
            net.Pairs.Select((p, i) => ($"rx_queue_{i}", p.ReceiveStatistics))
                .Concat(net.Pairs.Select((p, i) => ($"tx_queue_{i}", p.TransmitStatistics)));
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
                    ["coalescedSegments"] = q.Stats.CoalescedSegments,
                })]),
                ["configurationInterrupts"] = net.ConfigurationInterrupts,
                ["recoveries"] = net.Recoveries,
                ["recoveryDroppedTransmits"] = net.RecoveryDroppedTransmits,
                ["controlCommandsCompleted"] = net.Control.CommandsCompleted,
                ["controlCommandsRejected"] = net.Control.CommandsRejected,
                ["deviceStatistics"] = device is null ? null : new JsonObject
                {
                    ["supportedTypes"] = device.SupportedTypes.ToString(),
                    ["blocks"] = new JsonArray([.. device.Blocks.Select(b => (JsonNode)new JsonObject
                    {
                        ["queue"] = QueueName(net, b.QueueIndex),
                        ["queueIndex"] = b.QueueIndex,
                        ["type"] = b.Type.ToString(),
                        ["counters"] = new JsonObject(b.Counters.Select(c => KeyValuePair.Create(c.Name, (JsonNode?)JsonValue.Create(c.Value)))),
                    })]),
                },
            }.ToJsonString(Json.Options));
            return Finish(deviceError);
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
            if (stats.CoalescedSegments > 0)
            {
                Console.Out.WriteLine($"     {prefix}_coalesced_segments: {stats.CoalescedSegments}");
            }
        }

        foreach (DeviceStatisticsBlock block in device?.Blocks ?? [])
        {
            string queue = QueueName(net, block.QueueIndex);
            foreach (DeviceStatisticsCounter counter in block.Counters)
            {
                // rx_packets of rx_queue_0 prints as hw_rx_queue_0_packets; command_num of the control queue as hw_cvq_command_num.
                string name = counter.Name.StartsWith("rx_", StringComparison.Ordinal) || counter.Name.StartsWith("tx_", StringComparison.Ordinal) ? counter.Name[3..] : counter.Name;
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"     hw_{queue}_{name}: {counter.Value}"));
            }
        }

        Console.Out.WriteLine($"     recoveries: {net.Recoveries}");
        Console.Out.WriteLine($"     recovery_dropped_transmits: {net.RecoveryDroppedTransmits}");

        return Finish(deviceError);
    }

    private static int Finish(string? deviceError)
    {
        if (deviceError is null)
        {
            return 0;
        }

        Log.Error($"device statistics: {deviceError}");
        return 1;
    }

    // 0:rx0 1:tx0 ... 2N:controlq (§5.1.2), in the names the driver's own counters use.
    private static string QueueName(VirtioNetDevice net, int queueIndex) =>
        queueIndex == net.Control.QueueIndex ? "cvq"
        : queueIndex % 2 == 0 ? $"rx_queue_{queueIndex / 2}"
        : $"tx_queue_{queueIndex / 2}";
}
