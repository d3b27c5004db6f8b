using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet dump</c>: registers, queue state and statistics of the net device (the seed driver's debug dump); with
/// <c>--attach NAME</c> of the running instance's device, read without stopping its traffic.
/// </summary>
internal static class DumpCommand
{
    private static readonly Option<int> Frames = new("--frames")
    {
        Description = "Resolve the gateway 10.0.2.2 by ARP this many times first, so the rings have moved when they are dumped.",
        DefaultValueFactory = _ => 0,
    };

    public static Command Create()
    {
        var command = new Command("dump", "Bring up the net device and dump its registers, queues and statistics.");
        command.Options.Add(Attach.Option);
        CommonOptions.AddTo(command);
        command.Options.Add(Frames);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int frames = result.GetValue(Frames);
        if (frames is < 0 or > 100_000)
        {
            throw new CliException($"--frames must be 0 to 100000; got {frames}.");
        }

        (JsonObject report, _) = DeviceVerb.Report(
            result,
            "dump",
            _ => new JsonObject(),
            () =>
            {
                using IQemuBoard board = Boards.Start(settings, cancellationToken);
                using VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, new VirtioNetOptions { OperationMode = settings.Mode });
                Exercise(net, frames, cancellationToken);
                return new DeviceLink(net).Dump();
            },
            Frames);

        // The feature words by name.
        var offered = new VirtioFeatureSet(report["offeredLow"]!.GetValue<ulong>(), report["offeredHigh"]!.GetValue<ulong>());
        var negotiated = new VirtioFeatureSet(report["negotiatedLow"]!.GetValue<ulong>(), report["negotiatedHigh"]!.GetValue<ulong>());
        foreach (string field in new[] { "offeredLow", "offeredHigh", "negotiatedLow", "negotiatedHigh" })
        {
            report.Remove(field);
        }

        report["offeredFeatures"] = FeatureListing.ToJson(offered);
        report["offeredFeatureBits"] = offered.ToString();
        report["negotiatedFeatures"] = FeatureListing.ToJson(negotiated);
        report["negotiatedFeatureBits"] = negotiated.ToString();
        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
            return 0;
        }

        string S(JsonNode? node) => Markup.Escape(node is JsonValue v && v.TryGetValue(out string? text) ? text : node?.ToJsonString() ?? "-");
        AnsiConsole.MarkupLine($"[bold]{S(report["transport"])}[/]  MAC {S(report["mac"])}  link {(report["linkUp"]!.GetValue<bool>() ? "up" : "down")}  " +
            $"MTU {S(report["mtu"])}  receive mode {S(report["receiveMode"])}  {S(report["ringLayout"])} rings  header {S(report["headerLength"])} bytes  {S(report["mode"])} ({S(report["interrupt"])})");
        AnsiConsole.MarkupLine($"offered ({offered}): {Markup.Escape(string.Join(' ', FeatureListing.Names(offered)))}");
        AnsiConsole.MarkupLine($"negotiated ({negotiated}): {Markup.Escape(string.Join(' ', FeatureListing.Names(negotiated)))}");

        var regs = new Table().AddColumns("Register", "Offset", "Scope", "Value");
        foreach (JsonNode? r in report["registers"]!.AsArray())
        {
            regs.AddRow(S(r!["name"]), S(r["offset"]), S(r["scope"]), S(r["value"]));
        }

        AnsiConsole.Write(regs);

        // One column per queue and one row per field, so the table fits an 80-column terminal or a log.
        JsonObject[] queues = [.. report["queues"]!.AsArray().Select(q => q!.AsObject())];
        var table = new Table().AddColumn("queue");
        foreach (JsonObject q in queues)
        {
            table.AddColumn($"{S(q["index"])} ({S(q["layout"])})");
        }

        void Row(string name, Func<JsonObject, string> value) =>
            table.AddRow([name, .. queues.Select(value)]);

        string Flag(JsonNode? node, string yes, string no) => node?.GetValue<bool>() == true ? yes : no;
        Row("size", q => S(q["size"]));
        Row("avail.idx (driver)", q => S(q["availIdx"]));
        Row("used.idx (device)", q => S(q["usedIdx"]));
        Row("next used to take", q => S(q["lastUsedIdx"]));
        Row("free descriptors", q => S(q["freeDescriptors"]));
        Row("outstanding chains", q => S(q["outstanding"]));
        Row("interrupts suppressed", q => Flag(q["interruptsSuppressed"], "yes", "no"));
        Row("notifications suppressed", q => Flag(q["notificationsSuppressed"], "yes", "no"));
        Row("used_event / avail_event", q => $"{S(q["usedEvent"])} / {S(q["availEvent"])}");
        Row("wrap counters (avail/used)", q => q["availWrapCounter"] is null ? "-" : $"{Flag(q["availWrapCounter"], "1", "0")}/{Flag(q["usedWrapCounter"], "1", "0")}");
        Row("descriptor area", q => Hex(q["descriptorArea"]));
        Row("driver area", q => Hex(q["driverArea"]));
        Row("device area", q => Hex(q["deviceArea"]));
        Row("broken", q => q["brokenReason"] is null ? "no" : S(q["brokenReason"]));

        AnsiConsole.Write(table);

        var stats = new Table().AddColumns("Queue", "Packets", "Bytes", "Drops", "Errors", "Notifications", "Interrupts");
        foreach (JsonNode? s in report["statistics"]!.AsArray())
        {
            stats.AddRow(S(s!["queue"]), S(s["packets"]), S(s["bytes"]), S(s["drops"]), S(s["errors"]), S(s["notifications"]), S(s["interrupts"]));
        }

        AnsiConsole.Write(stats);
        AnsiConsole.WriteLine($"Recoveries: {report["recoveries"]} (transmits dropped by them: {report["recoveryDroppedTransmits"]})");
        return 0;
    }

    private static string Hex(JsonNode? node) => node is null ? "-" : string.Create(CultureInfo.InvariantCulture, $"0x{node.GetValue<ulong>():x}");

    // Resolves the gateway by ARP this many times (the diagnostic client builds the frames), so indexes and statistics move.
    private static void Exercise(VirtioNetDevice net, int frames, CancellationToken cancellationToken)
    {
        if (frames == 0)
        {
            return;
        }

        var session = new DiagnosticClient(new VirtioNetFramePort(net));
        session.Configure(IPAddress.Parse("10.0.2.15"), IPAddress.Parse("255.255.255.0"), IPAddress.Parse("10.0.2.2"));
        for (int i = 0; i < frames; i++)
        {
            session.Link.ArpCache.Clear();
            session.ResolveAsync(IPAddress.Parse("10.0.2.2"), cancellationToken).AsTask().GetAwaiter().GetResult();
        }
    }
}
