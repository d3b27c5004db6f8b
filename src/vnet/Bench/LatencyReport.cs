using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Net;

namespace VirtioNet.Cli.Bench;

/// <summary>Writes a <see cref="LatencyResult"/> as a table, or as one JSON object with <c>--json</c>.</summary>
internal static class LatencyReport
{
    public static void Write(LatencyResult r, bool json, VirtioNetDevice net)
    {
        string operation = r.OperationMode == OperationMode.Poll ? "poll" : $"{r.OperationMode.ToString().ToLowerInvariant()} ({net.InterruptDescription})";
        if (json)
        {
            var o = new JsonObject
            {
                ["target"] = net.TransportDescription,
                ["mode"] = "latency",
                ["operationMode"] = r.OperationMode.ToString().ToLowerInvariant(),
                ["size"] = r.FrameSize,
                ["rate"] = r.Rate,
                ["seconds"] = Math.Round(r.Seconds, 3),
                ["sent"] = r.Sent,
                ["measured"] = r.Measured,
                ["returned"] = r.Returned,
                ["lost"] = r.Lost,
                ["foreign"] = r.Foreign,
                ["receiveWaits"] = r.ReceiveWaits,
                ["cpuSeconds"] = Math.Round(r.CpuSeconds, 4),
                ["cpuNsPerFrame"] = Math.Round(r.CpuNsPerFrame, 1),
                ["p50Ns"] = r.P50,
                ["p99Ns"] = r.P99,
                ["p999Ns"] = r.P999,
                ["maxNs"] = r.Max,
                ["meanNs"] = Math.Round(r.Mean, 1),
                ["gcCollections"] = r.Collections,
                ["noGcRegion"] = r.NoGcRegion,
                ["allocatedBytes"] = r.AllocatedBytes,
                ["negotiatedFeatures"] = $"0x{net.NegotiatedFeatures.Low:x}",
            };
            Console.Out.WriteLine(o.ToJsonString(Json.Options));
            return;
        }

        var table = new Table().AddColumns("figure", "value");
        table.AddRow("target", Markup.Escape(net.TransportDescription));
        table.AddRow("mode", "latency (round trip)");
        table.AddRow("operation mode", Markup.Escape(operation));
        table.AddRow("frame size", $"{N(r.FrameSize)} B");
        table.AddRow("rate", r.Rate == 0 ? "as fast as the ring takes frames" : $"{N(r.Rate)} frames/s");
        table.AddRow("measured / returned / lost", $"{N(r.Measured)} / {N(r.Returned)} / {N(r.Lost)}");
        table.AddRow("[bold]p50 / p99 / p99.9[/]", $"[bold]{Us(r.P50)} / {Us(r.P99)} / {Us(r.P999)} µs[/]");
        table.AddRow("max / mean", $"{Us(r.Max)} / {Us((long)r.Mean)} µs");
        table.AddRow("receive waits", N(r.ReceiveWaits));
        table.AddRow("CPU time per frame", $"{r.CpuNsPerFrame.ToString("F0", CultureInfo.InvariantCulture)} ns");
        table.AddRow("garbage collections", r.NoGcRegion ? N(r.Collections) : $"{N(r.Collections)} (no no-GC region)");
        table.AddRow("allocated while measuring", $"{N(r.AllocatedBytes)} B");
        AnsiConsole.Write(table);
    }

    private static string N(long v) => v.ToString(CultureInfo.InvariantCulture);

    private static string Us(long nanoseconds) => (nanoseconds / 1000.0).ToString("F1", CultureInfo.InvariantCulture);
}
