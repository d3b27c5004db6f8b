using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet monitor NAME</c>: the events of a running instance as they happen (link up and down, announce, configuration,
/// queue broken, recovered, filter and MAC changes), a line each as <c>ip monitor</c> prints them, or JSON lines.
/// </summary>
internal static class MonitorCommand
{
    private static readonly Option<bool> JsonOutput = new("--json") { Description = "One JSON object per event (docs/CONTROL.md)." };
    private static readonly Option<int?> Count = new("--count", "-c") { Description = "Stop after this many events." };

    public static Command Create() =>
        InstanceCommandRunner.Create(
            "monitor",
            "Show the events of a running 'vnet up' instance as they happen (until Ctrl-C).",
            (name, result, cancellationToken) => Execute(name, result.GetValue(JsonOutput), result.GetValue(Count), cancellationToken),
            JsonOutput,
            Count);

    private static int Execute(string name, bool json, int? count, CancellationToken cancellationToken)
    {
        InstanceCommandRunner.CheckCount(count);
        using ControlSubscription events = ControlClient.Subscribe(ControlServer.DefaultDirectory, name, new JsonObject { ["command"] = "monitor" });
        Log.Info($"{name}: link {events.Reply["link"]}; watching (Ctrl-C to stop)");
        int seen = 0;
        while (count is null || seen < count)
        {
            JsonObject? e = events.Read(cancellationToken);
            if (e is null)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    return 0;
                }

                Log.Info($"{name} stopped");
                return 0;
            }

            Console.Out.WriteLine(json ? e.ToJsonString() : Describe(name, e));
            Console.Out.Flush();
            seen++;
        }

        return 0;
    }

    // "07:12:03.481 vnet0: link-down" with the detail and, when the service's queue overflowed, what was lost.
    private static string Describe(string name, JsonObject e)
    {
        string time = DateTime.TryParse(e["time"]?.ToString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out DateTime at)
            ? at.ToLocalTime().ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture)
            : "?";
        string detail = e["detail"]?.ToString() is { Length: > 0 } d ? $" {d}" : "";
        string dropped = e["dropped"] is { } lost ? $" ({lost} earlier events lost)" : "";
        return $"{time} {name}: {e["event"]}{detail}{dropped}";
    }
}
