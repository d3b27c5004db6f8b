using System.Text.Json.Nodes;
using Spectre.Console.Testing;
using VirtioNet.Cli.Commands;
using Xunit;

namespace VirtioNet.Tests.Cli;

/// <summary>
/// <c>vnet top</c>'s live table (the view a terminal gets), rendered through Spectre.Console's <see cref="TestConsole"/>
/// from <c>stats</c> reports shaped as the control socket sends them, with the time between samples given, so the rates
/// are exact.
/// </summary>
public sealed class TopLiveViewTests
{
    [Fact]
    public void TheLiveTableRedrawsEachPairsCountsAndTheRatesBetweenTwoSamples()
    {
        JsonObject[] reports =
        [
            Report((Rx: 100, RxBytes: 6_400, Tx: 50, TxBytes: 3_200, Drops: 0), (Rx: 7, RxBytes: 700, Tx: 3, TxBytes: 300, Drops: 0)),
            Report((Rx: 2_100, RxBytes: 134_400, Tx: 1_050, TxBytes: 67_200, Drops: 4), (Rx: 507, RxBytes: 50_700, Tx: 3, TxBytes: 300, Drops: 0)),
        ];
        int asked = 0;
        var console = new TestConsole().Width(120);
        console.Profile.Capabilities.Interactive = true;
        var sampler = new TopCommand.Sampler(() => reports[asked++], elapsed: () => TimeSpan.FromSeconds(2));

        TopCommand.ShowLive(console, "vnet0", sampler, TimeSpan.FromMilliseconds(1), count: 2, TestContext.Current.CancellationToken);

        Assert.Equal(2, asked);
        string[] lines = console.Lines.ToArray();
        Assert.Contains(lines, l => l.Contains("vnet top vnet0", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("rx pps", StringComparison.Ordinal) && l.Contains("svc drops", StringComparison.Ordinal));

        // The last drawing: pair 0 received 2,000 frames and sent 1,000 in 2 s, pair 1 received 500; pair 0's service
        // dropped 4 frames. Each row is "queue | rx pkts | rx pps | rx B/s | rx drop/err | tx pkts | tx pps | tx B/s | ...".
        string[] pair0 = Cells(lines.Last(l => Cells(l) is ["0", ..]));
        string[] pair1 = Cells(lines.Last(l => Cells(l) is ["1", ..]));
        Assert.Equal(["0", "2,100", "1,000", "64,000", "0/0", "1,050", "500", "32,000", "0/0", "4"], pair0);
        Assert.Equal(["1", "507", "250", "25,000", "0/0", "3", "0", "0", "0/0", "0"], pair1);

        // The first drawing had no earlier sample: its rates are 0.
        string[] first = Cells(lines.First(l => Cells(l) is ["0", ..]));
        Assert.Equal(["0", "100", "0", "0", "0/0", "50", "0", "0", "0/0", "0"], first);
    }

    [Fact]
    public void TheLiveViewStopsAtOnceWhenCancelledBetweenSamples()
    {
        using var cancel = new CancellationTokenSource();
        int asked = 0;
        var sampler = new TopCommand.Sampler(() =>
        {
            asked++;
            cancel.Cancel();
            return Report((Rx: 1, RxBytes: 60, Tx: 1, TxBytes: 60, Drops: 0));
        });
        var console = new TestConsole();

        TopCommand.ShowLive(console, "vnet0", sampler, TimeSpan.FromMinutes(10), count: null, cancel.Token);

        Assert.Equal(1, asked);
        Assert.Contains(console.Lines, l => l.Contains("vnet top vnet0", StringComparison.Ordinal));
    }

    // The cells of a table row drawn with Spectre's box characters, trimmed; empty for a line that is no row.
    private static string[] Cells(string line) =>
        line.Contains('│', StringComparison.Ordinal)
            ? [.. line.Split('│', StringSplitOptions.RemoveEmptyEntries).Select(c => c.Trim()).Where(c => c.Length > 0)]
            : [];

    // A stats report with the fields top reads (per pair the device's counters and the service's drops by reason), parsed
    // from its text as a reply from the control socket is.
    private static JsonObject Report(params (long Rx, long RxBytes, long Tx, long TxBytes, long Drops)[] pairs) => JsonNode.Parse(new JsonObject
    {
        ["ok"] = true,
        ["pairs"] = new JsonArray([.. pairs.Select((p, i) => (JsonNode)new JsonObject
        {
            ["pair"] = i,
            ["rxPackets"] = p.Rx,
            ["rxBytes"] = p.RxBytes,
            ["rxDrops"] = 0,
            ["rxErrors"] = 0,
            ["txPackets"] = p.Tx,
            ["txBytes"] = p.TxBytes,
            ["txDrops"] = 0,
            ["txErrors"] = 0,
            ["serviceDrops"] = new JsonObject { ["kernelRefused"] = p.Drops },
        })]),
    }.ToJsonString())!.AsObject();
}
