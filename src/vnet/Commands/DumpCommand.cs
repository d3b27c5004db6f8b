using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet dump</c>: registers, queue state and statistics of the net device (the seed driver's debug dump).</summary>
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

        using IQemuBoard board = Boards.Start(settings, cancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, new VirtioNetOptions { OperationMode = settings.Mode });
        Exercise(net, frames, cancellationToken);

        IReadOnlyList<RegisterValue> registers = net.ReadRegisters();
        IReadOnlyList<VirtqueueState> queues = net.GetQueueStates();
        if (settings.Json)
        {
            Console.Out.WriteLine(ToJson(net, registers, queues).ToJsonString(Json.Options));
            return 0;
        }

        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(net.TransportDescription)}[/]  MAC {Json.FormatMac(net.MacAddress.Span)}  link {(net.IsLinkUp ? "up" : "down")}  " +
            $"MTU {net.Mtu}  receive mode {net.ReceiveMode}  {net.RingLayout.ToString().ToLowerInvariant()} rings  header {net.HeaderLength} bytes  {net.OperationMode} ({Markup.Escape(net.InterruptDescription)})");
        AnsiConsole.MarkupLine($"offered ({net.OfferedFeatures}): {Markup.Escape(string.Join(' ', FeatureListing.Names(net.OfferedFeatures)))}");
        AnsiConsole.MarkupLine($"negotiated ({net.NegotiatedFeatures}): {Markup.Escape(string.Join(' ', FeatureListing.Names(net.NegotiatedFeatures)))}");

        var regs = new Table().AddColumns("Register", "Offset", "Scope", "Value");
        foreach (RegisterValue r in registers)
        {
            regs.AddRow(r.Name, $"0x{r.Offset:x3}", r.Scope, $"0x{r.Value:x}");
        }

        AnsiConsole.Write(regs);

        // One column per queue and one row per field, so the table fits an 80-column terminal or a log.
        var table = new Table().AddColumn("queue");
        foreach (VirtqueueState q in queues)
        {
            table.AddColumn($"{q.QueueIndex} ({q.Layout})");
        }

        void Row(string name, Func<VirtqueueState, string> value) =>
            table.AddRow([name, .. queues.Select(value)]);

        Row("size", q => N(q.Size));
        Row("avail.idx (driver)", q => N(q.AvailableIndex));
        Row("used.idx (device)", q => N(q.DeviceUsedIndex));
        Row("next used to take", q => N(q.LastUsedIndex));
        Row("free descriptors", q => N(q.FreeDescriptors));
        Row("outstanding chains", q => N(q.Outstanding));
        Row("interrupts suppressed", q => q.InterruptsSuppressed ? "yes" : "no");
        Row("notifications suppressed", q => q.NotificationsSuppressed ? "yes" : "no");
        Row("used_event / avail_event", q => $"{q.UsedEvent?.ToString(CultureInfo.InvariantCulture) ?? "-"} / {q.AvailEvent?.ToString(CultureInfo.InvariantCulture) ?? "-"}");
        Row("wrap counters (avail/used)", q => q.AvailWrapCounter is null ? "-" : $"{(q.AvailWrapCounter.Value ? 1 : 0)}/{(q.UsedWrapCounter == true ? 1 : 0)}");
        Row("descriptor area", q => $"0x{q.DescriptorArea:x}");
        Row("driver area", q => $"0x{q.DriverArea:x}");
        Row("device area", q => $"0x{q.DeviceArea:x}");
        Row("broken", q => Markup.Escape(q.BrokenReason ?? "no"));

        AnsiConsole.Write(table);

        var stats = new Table().AddColumns("Queue", "Packets", "Bytes", "Drops", "Errors", "Notifications", "Interrupts");
        foreach (VirtioNetQueueStatistics s in new[] { net.Pairs[0].ReceiveStatistics, net.Pairs[0].TransmitStatistics })
        {
            stats.AddRow(s.Name, N(s.Packets), N(s.Bytes), N(s.Drops), N(s.Errors), N(s.Notifications), N(s.Interrupts));
        }

        AnsiConsole.Write(stats);
        AnsiConsole.WriteLine($"Recoveries: {N(net.Recoveries)} (transmits dropped by them: {N(net.RecoveryDroppedTransmits)})");
        return 0;
    }

    private static string N(long value) => value.ToString(CultureInfo.InvariantCulture);

    // Resolves the gateway by ARP this many times (the diagnostic client builds the frames), so indexes and statistics move.
    private static void Exercise(VirtioNetDevice net, int frames, CancellationToken cancellationToken)
    {
        if (frames == 0)
        {
            return;
        }

        var session = new NetworkSession(new VirtioNetFramePort(net));
        session.Configure(IPAddress.Parse("10.0.2.15"), IPAddress.Parse("255.255.255.0"), IPAddress.Parse("10.0.2.2"));
        for (int i = 0; i < frames; i++)
        {
            session.Link.ArpCache.Clear();
            session.Resolve(IPAddress.Parse("10.0.2.2"), cancellationToken);
        }
    }

    private static JsonObject ToJson(VirtioNetDevice net, IReadOnlyList<RegisterValue> registers, IReadOnlyList<VirtqueueState> queues) => new()
    {
        ["transport"] = net.TransportDescription,
        ["mac"] = Json.FormatMac(net.MacAddress.Span),
        ["linkUp"] = net.IsLinkUp,
        ["mtu"] = net.Mtu,
        ["receiveMode"] = net.ReceiveMode.ToString().ToLowerInvariant(),
        ["headerLength"] = net.HeaderLength,
        ["mode"] = net.OperationMode.ToString().ToLowerInvariant(),
        ["ringLayout"] = net.RingLayout.ToString().ToLowerInvariant(),
        ["interrupt"] = net.InterruptDescription,
        ["offeredFeatures"] = FeatureListing.ToJson(net.OfferedFeatures),
        ["offeredFeatureBits"] = net.OfferedFeatures.ToString(),
        ["negotiatedFeatures"] = FeatureListing.ToJson(net.NegotiatedFeatures),
        ["negotiatedFeatureBits"] = net.NegotiatedFeatures.ToString(),
        ["registers"] = new JsonArray([.. registers.Select(r => (JsonNode)new JsonObject
        {
            ["name"] = r.Name,
            ["offset"] = $"0x{r.Offset:x3}",
            ["scope"] = r.Scope,
            ["value"] = $"0x{r.Value:x}",
        })]),
        ["queues"] = new JsonArray([.. queues.Select(q => (JsonNode)new JsonObject
        {
            ["index"] = q.QueueIndex,
            ["layout"] = q.Layout,
            ["size"] = q.Size,
            ["availIdx"] = q.AvailableIndex,
            ["usedIdx"] = q.DeviceUsedIndex,
            ["lastUsedIdx"] = q.LastUsedIndex,
            ["freeDescriptors"] = q.FreeDescriptors,
            ["outstanding"] = q.Outstanding,
            ["interruptsSuppressed"] = q.InterruptsSuppressed,
            ["notificationsSuppressed"] = q.NotificationsSuppressed,
            ["usedEvent"] = q.UsedEvent,
            ["availEvent"] = q.AvailEvent,
            ["availWrapCounter"] = q.AvailWrapCounter,
            ["usedWrapCounter"] = q.UsedWrapCounter,
            ["driverEventFlags"] = q.DriverEventFlags,
            ["deviceEventFlags"] = q.DeviceEventFlags,
            ["brokenReason"] = q.BrokenReason,
        })]),
        ["statistics"] = new JsonArray([.. new[] { net.Pairs[0].ReceiveStatistics, net.Pairs[0].TransmitStatistics }.Select(s => (JsonNode)new JsonObject
        {
            ["queue"] = s.Name,
            ["packets"] = s.Packets,
            ["bytes"] = s.Bytes,
            ["drops"] = s.Drops,
            ["errors"] = s.Errors,
            ["notifications"] = s.Notifications,
            ["interrupts"] = s.Interrupts,
        })]),
        ["recoveries"] = net.Recoveries,
        ["recoveryDroppedTransmits"] = net.RecoveryDroppedTransmits,
    };
}
