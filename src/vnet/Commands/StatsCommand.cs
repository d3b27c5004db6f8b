using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using VirtioNet.Net;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet stats</c>: per-queue counters, like <c>ethtool -S</c>, after receiving for <c>--seconds</c>; with
/// VIRTIO_NET_F_DEVICE_STATS negotiated also the device's own counters (the <c>hw_</c> names, as Linux prints them).
/// With <c>--attach NAME</c> the counters of the running instance, with its service's counters of each pair after them.
/// </summary>
internal static class StatsCommand
{
    private static readonly Option<double> Seconds = new("--seconds")
    {
        Description = "Receive (and drop) whatever arrives on every queue for this long before printing. Default 0.",
        DefaultValueFactory = _ => 0,
    };

    public static Command Create() =>
        DeviceVerb.Create(
            "stats",
            "Show the driver's per-queue statistics, as ethtool -S does.",
            Execute,
            withQueues: true,
            Seconds);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        double seconds = result.GetValue(Seconds);
        if (seconds is < 0 or > 3600 || double.IsNaN(seconds))
        {
            throw new CliException($"--seconds must be 0 to 3600; got {seconds}.");
        }

        JsonObject report;
        if (Attach.Name(result) is { } instance)
        {
            // The running instance's pumps receive; --seconds only waits before the counters are read.
            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromSeconds(seconds));
            cancellationToken.ThrowIfCancellationRequested();
            report = Attach.Ask(instance, "stats", new JsonObject());
        }
        else
        {
            int queues = OneShotDevice.ReadQueues(result);
            using OneShotDevice session = OneShotDevice.Open(settings, queues, string.Empty, cancellationToken);
            Drain(session.Net, seconds, cancellationToken);
            report = new DeviceLink(session.Net).StatsReport();
        }

        // A device that answers the statistics query badly does not hide the driver's counters: they are printed, the
        // failure is reported on stderr and the exit code says so.
        string? deviceError = report["deviceStatisticsError"]?.GetValue<string>();
        report.Remove("deviceStatisticsError");
        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
        }
        else
        {
            Console.Out.Write(ToText(report));
        }

        if (deviceError is null)
        {
            return 0;
        }

        Log.Error($"device statistics: {deviceError}");
        return 1;
    }

    // A queue's counters shown only when not 0, with the names ethtool -S gives them.
    private static readonly (string Field, string Name)[] OffloadCounters =
    [
        ("ringFull", "ring_full"),
        ("checksumsByDevice", "csum_by_device"),
        ("checksumsByDriver", "csum_by_driver"),
        ("segmentationByDevice", "gso_by_device"),
        ("segmentationByDriver", "gso_by_driver"),
    ];

    /// <summary>ethtool -S's lines from the report; with a running instance's report also the service's counters of each pair.</summary>
    public static string ToText(JsonObject report)
    {
        var text = new StringBuilder();
        text.Append("NIC statistics:\n");
        JsonArray queues = report["queues"]!.AsArray();
        int pairs = queues.Count / 2;
        for (int i = 0; i < queues.Count; i++)
        {
            // Every pair's receive queue, then every pair's transmit queue.
            JsonObject q = queues[i]!.AsObject();
            string prefix = i < pairs ? $"rx_queue_{i}" : $"tx_queue_{i - pairs}";
            Line(text, $"{prefix}_packets", q["packets"]);
            Line(text, $"{prefix}_bytes", q["bytes"]);
            Line(text, $"{prefix}_drops", q["drops"]);
            Line(text, $"{prefix}_errors", q["errors"]);
            Line(text, $"{prefix}_kicks", q["notifications"]);
            Line(text, $"{prefix}_interrupts", q["interrupts"]);
            if (q["coalescedSegments"]!.GetValue<long>() > 0)
            {
                Line(text, $"{prefix}_coalesced_segments", q["coalescedSegments"]);
            }

            // The offload and ring counters, where the device or the driver did any (reports of older instances lack them).
            foreach ((string field, string name) in OffloadCounters)
            {
                if (q[field]?.GetValue<long>() > 0)
                {
                    Line(text, $"{prefix}_{name}", q[field]);
                }
            }

            foreach ((string reason, JsonNode? value) in q["dropsByReason"]?.AsObject() ?? [])
            {
                if (value?.GetValue<long>() > 0)
                {
                    Line(text, $"{prefix}_drops_{JsonNamingPolicy.SnakeCaseLower.ConvertName(reason)}", value);
                }
            }
        }

        foreach (JsonNode? node in report["deviceStatistics"]?["blocks"]?.AsArray() ?? [])
        {
            string queue = node!["queue"]!.GetValue<string>();
            foreach ((string counter, JsonNode? value) in node["counters"]!.AsObject())
            {
                // rx_packets of rx_queue_0 prints as hw_rx_queue_0_packets; command_num of the control queue as hw_cvq_command_num.
                string name = counter.StartsWith("rx_", StringComparison.Ordinal) || counter.StartsWith("tx_", StringComparison.Ordinal) ? counter[3..] : counter;
                Line(text, $"hw_{queue}_{name}", value);
            }
        }

        Line(text, "recoveries", report["recoveries"]);
        Line(text, "recovery_dropped_transmits", report["recoveryDroppedTransmits"]);

        // The service's side of each pair (a running instance only): frames to and from the kernel, waits, drops by reason.
        foreach (JsonNode? node in report["pairs"]?.AsArray() ?? [])
        {
            JsonObject pair = node!.AsObject();
            string prefix = string.Create(CultureInfo.InvariantCulture, $"queue_{pair["pair"]}");
            Line(text, $"{prefix}_to_kernel_frames", pair["toKernelFrames"]);
            Line(text, $"{prefix}_to_kernel_bytes", pair["toKernelBytes"]);
            Line(text, $"{prefix}_from_kernel_frames", pair["fromKernelFrames"]);
            Line(text, $"{prefix}_from_kernel_bytes", pair["fromKernelBytes"]);
            Line(text, $"{prefix}_ring_full_waits", pair["ringFullWaits"]);
            foreach ((string reason, JsonNode? value) in pair["serviceDrops"]?.AsObject() ?? [])
            {
                Line(text, $"{prefix}_drops_{reason}", value);
            }
        }

        return text.ToString();
    }

    private static void Line(StringBuilder text, string name, JsonNode? value) =>
        text.Append("     ").Append(name).Append(": ").Append(value?.ToJsonString() ?? "0").Append('\n');

    // Receives (and drops) whatever arrives on every queue for this long, so the counters have moved.
    private static void Drain(VirtioNetDevice net, double seconds, CancellationToken cancellationToken)
    {
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
    }
}
