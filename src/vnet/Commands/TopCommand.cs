using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet top NAME</c>: a live per-queue view of a running instance (packets, bytes, drops, errors and their rates per
/// second), from its <c>stats</c> asked every interval: a Spectre.Console live table when stdout is a terminal, a plain
/// line per queue and interval otherwise.
/// </summary>
internal static class TopCommand
{
    private static readonly Option<double> Interval = new("--interval", "-i") { Description = "Seconds between updates.", DefaultValueFactory = _ => 1.0 };
    private static readonly Option<int?> Count = new("--count", "-c") { Description = "Stop after this many updates." };

    public static Command Create() =>
        InstanceCommandRunner.Create(
            "top",
            "A live per-queue view of a running 'vnet up' instance: packets, bytes, drops, errors and rates (until Ctrl-C or --count).",
            (name, result, cancellationToken) => Execute(name, result.GetValue(Interval), result.GetValue(Count), cancellationToken),
            Interval,
            Count);

    private static int Execute(string name, double interval, int? count, CancellationToken cancellationToken)
    {
        if (interval is < 0.1 or > 3600 || double.IsNaN(interval))
        {
            throw new CliException("--interval must be between 0.1 and 3600 seconds.");
        }

        InstanceCommandRunner.CheckCount(count);

        var sampler = new Sampler(() => AskStats(name));
        TimeSpan period = TimeSpan.FromSeconds(interval);
        if (Console.IsOutputRedirected)
        {
            for (int update = 0; count is null || update < count; update++)
            {
                if (update > 0 && cancellationToken.WaitHandle.WaitOne(period))
                {
                    return 0;
                }

                foreach (Row row in sampler.Next())
                {
                    Console.Out.WriteLine(row.Line());
                }

                Console.Out.Flush();
            }

            return 0;
        }

        ShowLive(AnsiConsole.Console, name, sampler, period, count, cancellationToken);
        return 0;
    }

    /// <summary>
    /// The live view: a table of <paramref name="name"/>'s queue pairs on <paramref name="console"/>, redrawn in place
    /// from each of <paramref name="count"/> samples (until cancelled when null), <paramref name="period"/> apart.
    /// </summary>
    internal static void ShowLive(IAnsiConsole console, string name, Sampler sampler, TimeSpan period, int? count, CancellationToken cancellationToken)
    {
        Table table = NewTable(name);
        console.Live(table).Start(context =>
        {
            for (int update = 0; count is null || update < count; update++)
            {
                if (update > 0 && cancellationToken.WaitHandle.WaitOne(period))
                {
                    return;
                }

                table.Rows.Clear();
                foreach (Row row in sampler.Next())
                {
                    table.AddRow(row.Cells());
                }

                context.Refresh();
            }
        });
    }

    // The instance's stats report, or its error as one line.
    private static JsonObject AskStats(string name)
    {
        JsonObject stats = ControlClient.Ask(ControlServer.DefaultDirectory, name, new JsonObject { ["command"] = "stats" });
        return stats["ok"]?.GetValue<bool>() == true ? stats : throw new ServiceException($"instance '{name}': {stats["error"]}");
    }

    private static Table NewTable(string name)
    {
        var table = new Table { Title = new TableTitle($"vnet top {Markup.Escape(name)}") };
        // Ten columns, so that an 80-column terminal shows them whole; the totals of bytes are in the plain lines and stats.
        foreach (string column in new[] { "queue", "rx pkts", "rx pps", "rx B/s", "rx drop/err", "tx pkts", "tx pps", "tx B/s", "tx drop/err", "svc drops" })
        {
            table.AddColumn(new TableColumn(column).RightAligned());
        }

        return table;
    }

    // One queue pair's counters and the rates since the last sample.
    internal readonly record struct Row(int Pair, long RxPackets, double RxPps, long RxBytes, double RxBps, long RxDrops, long RxErrors,
        long TxPackets, double TxPps, long TxBytes, double TxBps, long TxDrops, long TxErrors, long ServiceDrops)
    {
        public string Line() => string.Create(CultureInfo.InvariantCulture,
            $"queue {Pair}: rx {RxPackets} pkts {RxPps:0.0} pps {RxBytes} bytes {RxBps:0} B/s drops {RxDrops} errors {RxErrors} | " +
            $"tx {TxPackets} pkts {TxPps:0.0} pps {TxBytes} bytes {TxBps:0} B/s drops {TxDrops} errors {TxErrors} | service drops {ServiceDrops}");

        public string[] Cells() =>
        [
            N(Pair), N(RxPackets), R(RxPps), R(RxBps), $"{N(RxDrops)}/{N(RxErrors)}",
            N(TxPackets), R(TxPps), R(TxBps), $"{N(TxDrops)}/{N(TxErrors)}", N(ServiceDrops),
        ];

        private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

        private static string R(double value) => value.ToString("N0", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Takes <c>stats</c> reports (from <paramref name="ask"/>) and turns two in a row into rates over the time between
    /// them, as <paramref name="elapsed"/> tells it (a stopwatch restarted at each sample unless given).
    /// </summary>
    internal sealed class Sampler(Func<JsonObject> ask, Func<TimeSpan>? elapsed = null)
    {
        private readonly Dictionary<int, JsonObject> _last = [];
        private readonly Stopwatch _clock = new();
        private bool _sampled;

        public List<Row> Next()
        {
            JsonObject stats = ask();
            double seconds = !_sampled ? 0 : elapsed is null ? _clock.Elapsed.TotalSeconds : elapsed().TotalSeconds;
            _sampled = true;
            _clock.Restart();
            var rows = new List<Row>();
            foreach (JsonNode? node in stats["pairs"]!.AsArray())
            {
                JsonObject pair = node!.AsObject();
                int index = pair["pair"]!.GetValue<int>();
                _last.TryGetValue(index, out JsonObject? before);
                double Rate(string key) => before is null || seconds <= 0 ? 0 : (Value(pair, key) - Value(before, key)) / seconds;
                long serviceDrops = pair["serviceDrops"]?.AsObject().Sum(d => d.Value?.GetValue<long>() ?? 0) ?? 0;
                rows.Add(new Row(index,
                    Value(pair, "rxPackets"), Rate("rxPackets"), Value(pair, "rxBytes"), Rate("rxBytes"), Value(pair, "rxDrops"), Value(pair, "rxErrors"),
                    Value(pair, "txPackets"), Rate("txPackets"), Value(pair, "txBytes"), Rate("txBytes"), Value(pair, "txDrops"), Value(pair, "txErrors"),
                    serviceDrops));
                _last[index] = pair.DeepClone().AsObject();
            }

            return rows;
        }

        private static long Value(JsonObject pair, string key) => pair[key]?.GetValue<long>() ?? 0;
    }
}
