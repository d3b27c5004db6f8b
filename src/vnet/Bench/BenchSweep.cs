using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Net;
using VirtioNet.VhostUser;

namespace VirtioNet.Cli.Bench;

/// <summary><c>vnet bench --sizes ... [--chart FILE]</c>: one run per frame size on one vhost-user session, a table, and a chart.</summary>
internal static class BenchSweep
{
    public static int Run(
        string? socketPath, bool listen, VirtioNetOptions netOptions, MachineSettings settings, BenchMode mode, string sizeList,
        int burst, double seconds, string? chartPath, CancellationToken cancellationToken)
    {
        if (socketPath is not { Length: > 0 })
        {
            throw new CliException("--sizes runs against a vhost-user backend: give --vhost-user PATH.");
        }

        int[] sizes = ParseSizes(sizeList);
        if (chartPath is { Length: > 0 } && !chartPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase) && !chartPath.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
        {
            throw new CliException($"--chart must name a .png or .svg file; got '{chartPath}'.");
        }

        var options = new VhostUserOptions { SocketPath = socketPath, SocketMode = listen ? VhostUserSocketMode.Listen : VhostUserSocketMode.Connect };
        using VhostUserNetDevice session = VhostUserNetDevice.Open(options, netOptions, cancellationToken: cancellationToken);
        // A discarded warm-up, so the first size is not measured while the JIT is still tiering the loop up.
        BenchRunner.Run(session.Device, mode, sizes[0], burst, TimeSpan.FromSeconds(Math.Min(seconds, 1)), cancellationToken);

        var results = new List<BenchResult>();
        foreach (int size in sizes)
        {
            Log.Info($"{session.Device.TransportDescription}: {mode.ToString().ToLowerInvariant()} in {session.Device.OperationMode.ToString().ToLowerInvariant()} mode, {size}-byte frames, {seconds} s");
            results.Add(BenchRunner.Run(session.Device, mode, size, burst, TimeSpan.FromSeconds(seconds), cancellationToken));
        }

        if (chartPath is { Length: > 0 })
        {
            WriteChart(results, mode, chartPath);
            Log.Info($"chart written to {chartPath}");
        }

        if (settings.Json)
        {
            var array = new JsonArray();
            foreach (BenchResult r in results)
            {
                // JsonNode-typed, so the non-generic Add is chosen: Add<T> needs reflection (not trim or AOT safe).
                array.Add((JsonNode)new JsonObject
                {
                    ["size"] = r.FrameSize,
                    ["mpps"] = Math.Round(r.Mpps, 4),
                    ["gbps"] = Math.Round(r.Gbps, 4),
                    ["cpuNsPerPacket"] = Math.Round(r.CpuNanosecondsPerPacket, 1),
                    ["allocatedBytes"] = r.AllocatedBytes,
                    ["interrupts"] = r.Interrupts,
                });
            }

            Console.Out.WriteLine(new JsonObject
            {
                ["mode"] = mode.ToString().ToLowerInvariant(),
                ["operationMode"] = session.Device.OperationMode.ToString().ToLowerInvariant(),
                ["results"] = array,
            }.ToJsonString(Json.Options));
            return 0;
        }

        AnsiConsole.MarkupLine($"{mode.ToString().ToLowerInvariant()} in {session.Device.OperationMode.ToString().ToLowerInvariant()} mode");
        var table = new Table().AddColumns("size", "Mpps", "Gbit/s", "CPU ns/pkt", "allocated");
        foreach (BenchResult r in results)
        {
            table.AddRow(I(r.FrameSize), r.Mpps.ToString("F3", CultureInfo.InvariantCulture), r.Gbps.ToString("F2", CultureInfo.InvariantCulture),
                r.CpuNanosecondsPerPacket.ToString("F0", CultureInfo.InvariantCulture), $"{I(r.AllocatedBytes)} B");
        }

        AnsiConsole.Write(table);
        return 0;
    }

    private static int[] ParseSizes(string list)
    {
        string[] parts = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var sizes = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out sizes[i]) || sizes[i] is < 60 or > 1514)
            {
                throw new CliException($"--sizes takes frame sizes of 60 to 1514 separated by commas; '{parts[i]}' is not one.");
            }
        }

        return sizes.Length > 0 ? sizes : throw new CliException("--sizes is empty.");
    }

    // Rate against frame size, both as packets and as line rate, one chart with two axes.
    private static void WriteChart(IReadOnlyList<BenchResult> results, BenchMode mode, string path)
    {
        double[] sizes = [.. results.Select(r => (double)r.FrameSize)];
        var plot = new ScottPlot.Plot();
        var mpps = plot.Add.Scatter(sizes, [.. results.Select(r => r.Mpps)]);
        mpps.LegendText = "Mpps";
        var gbps = plot.Add.Scatter(sizes, [.. results.Select(r => r.Gbps)]);
        gbps.LegendText = "Gbit/s";
        gbps.Axes.YAxis = plot.Axes.Right;
        plot.Title($"VirtioNet {mode.ToString().ToLowerInvariant()} rate by frame size");
        plot.XLabel("frame size (bytes, without FCS)");
        plot.Axes.Left.Label.Text = "million packets per second";
        plot.Axes.Right.Label.Text = "Gbit/s on the wire";
        plot.ShowLegend();
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
        {
            plot.SaveSvg(path, 900, 520);
        }
        else
        {
            plot.SavePng(path, 900, 520);
        }
    }

    private static string I(long value) => value.ToString(CultureInfo.InvariantCulture);
}
