using System.CommandLine;
using System.Net.NetworkInformation;
using System.Text.Json.Nodes;
using VirtioNet.Net.Filtering;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet filter</c>: receive modes and the MAC filter table, in the spirit of <c>ip link set promisc/allmulticast</c>
/// and <c>bridge fdb</c>: <c>--promisc on</c>, <c>--allmulti off</c>, <c>--uc MAC</c>, <c>--mc MAC</c>; with <c>--attach NAME</c>
/// on the running instance's device (the kernel's own promiscuous and multicast changes of the interface reach it too).
/// </summary>
internal static class FilterCommand
{
    // One option per receive mode, named as the report names the mode (--promisc for promisc, ...).
    private static readonly (string Option, ReceiveFilterFlags Flag)[] Modes = [.. DeviceLink.ReceiveModes.Select(m => ($"--{m.Name}", m.Flag))];

    private static readonly Option<string?>[] ModeOptions =
        [.. Modes.Select(m => new Option<string?>(m.Option) { Description = $"on or off: {m.Flag} receive mode (VIRTIO_NET_CTRL_RX)." })];

    private static readonly Option<string[]> Unicast = new("--uc")
    {
        Description = "An extra unicast MAC address to accept (repeatable): the MAC filter table (VIRTIO_NET_CTRL_MAC_TABLE_SET).",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<string[]> Multicast = new("--mc")
    {
        Description = "A multicast MAC address to accept (repeatable).",
        AllowMultipleArgumentsPerToken = true,
    };

    public static Command Create() =>
        DeviceVerb.Create(
            "filter",
            "Show (and change) receive modes and the MAC filter table, as ip link set promisc/allmulticast does.",
            Execute,
            withQueues: false,
            [.. ModeOptions, Unicast, Multicast]);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        var changes = new List<(ReceiveFilterFlags Flag, bool On)>();
        var modes = new JsonObject();
        for (int i = 0; i < Modes.Length; i++)
        {
            if (result.GetValue(ModeOptions[i]) is { } text)
            {
                bool on = OnOff.Parse(text, Modes[i].Option);
                changes.Add((Modes[i].Flag, on));
                modes[Modes[i].Option[2..]] = on;
            }
        }

        PhysicalAddress[] unicast = [.. (result.GetValue(Unicast) ?? []).Select(t => OnOff.ParseMac(t, "--uc"))];
        PhysicalAddress[] multicast = [.. (result.GetValue(Multicast) ?? []).Select(t => OnOff.ParseMac(t, "--mc"))];
        bool table = unicast.Length > 0 || multicast.Length > 0;
        (JsonObject report, string device) = DeviceVerb.Report(
            result,
            "filter",
            _ =>
            {
                var request = new JsonObject { ["modes"] = modes };
                if (table)
                {
                    request["unicast"] = new JsonArray([.. unicast.Select(a => (JsonNode)Json.FormatMac(a.GetAddressBytes()))]);
                    request["multicast"] = new JsonArray([.. multicast.Select(a => (JsonNode)Json.FormatMac(a.GetAddressBytes()))]);
                }

                return request;
            },
            () =>
            {
                using OneShotDevice session = OneShotDevice.Open(settings, 1, string.Empty, cancellationToken);
                return new DeviceLink(session.Net).Filter(changes, table ? unicast : null, table ? multicast : null);
            });

        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
            return 0;
        }

        ReceiveFilterFlags filter = Modes.Where(m => report["modes"]![m.Option[2..]]!.GetValue<bool>()).Aggregate(ReceiveFilterFlags.None, (f, m) => f | m.Flag);
        Console.Out.WriteLine($"{device}: link/ether {report["mac"]}");
        Console.Out.WriteLine($"    receive modes: {(filter == ReceiveFilterFlags.None ? "(device defaults)" : filter.ToString())}");
        foreach (JsonNode? address in report["unicast"]!.AsArray())
        {
            Console.Out.WriteLine($"    uc {address}");
        }

        foreach (JsonNode? address in report["multicast"]!.AsArray())
        {
            Console.Out.WriteLine($"    mc {address}");
        }

        return 0;
    }
}
