using System.CommandLine;
using System.Net.NetworkInformation;
using System.Text.Json.Nodes;
using VirtioNet.Net.Filtering;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet filter</c>: receive modes and the MAC filter table, in the spirit of <c>ip link set promisc/allmulticast</c>
/// and <c>bridge fdb</c>: <c>--promisc on</c>, <c>--allmulti off</c>, <c>--uc MAC</c>, <c>--mc MAC</c>.
/// </summary>
internal static class FilterCommand
{
    private static readonly (string Option, ReceiveFilterFlags Flag)[] Modes =
    [
        ("--promisc", ReceiveFilterFlags.Promiscuous),
        ("--allmulti", ReceiveFilterFlags.AllMulticast),
        ("--allunicast", ReceiveFilterFlags.AllUnicast),
        ("--nomulticast", ReceiveFilterFlags.NoMulticast),
        ("--nounicast", ReceiveFilterFlags.NoUnicast),
        ("--nobroadcast", ReceiveFilterFlags.NoBroadcast),
    ];

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

    public static Command Create()
    {
        var command = new Command("filter", "Show (and change) receive modes and the MAC filter table, as ip link set promisc/allmulticast does.");
        foreach (Option<string?> option in ModeOptions)
        {
            command.Options.Add(option);
        }

        command.Options.Add(Unicast);
        command.Options.Add(Multicast);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        var changes = new List<(ReceiveFilterFlags Flag, bool On)>();
        for (int i = 0; i < Modes.Length; i++)
        {
            if (result.GetValue(ModeOptions[i]) is { } text)
            {
                changes.Add((Modes[i].Flag, OnOff.Parse(text, Modes[i].Option)));
            }
        }

        PhysicalAddress[] unicast = [.. (result.GetValue(Unicast) ?? []).Select(t => OnOff.ParseMac(t, "--uc"))];
        PhysicalAddress[] multicast = [.. (result.GetValue(Multicast) ?? []).Select(t => OnOff.ParseMac(t, "--mc"))];
        using NetDeviceSession session = NetDeviceSession.Open(settings, 1, string.Empty, cancellationToken);
        if (changes.Count > 0)
        {
            ReceiveFilterFlags flags = changes.Aggregate(session.Net.Control.ReceiveFilter, (f, c) => c.On ? f | c.Flag : f & ~c.Flag);
            session.Net.Control.SetReceiveMode(flags);
        }

        if (unicast.Length > 0 || multicast.Length > 0)
        {
            session.Net.Control.SetMacFilter(unicast, multicast);
        }

        ReceiveFilterFlags filter = session.Net.Control.ReceiveFilter;
        MacFilterPlan? plan = session.Net.Control.MacFilter;
        if (settings.Json)
        {
            var modes = new JsonObject();
            foreach ((string option, ReceiveFilterFlags flag) in Modes)
            {
                modes[option[2..]] = (filter & flag) != 0;
            }

            Console.Out.WriteLine(new JsonObject
            {
                ["mac"] = Json.FormatMac(session.Net.MacAddress.Span),
                ["modes"] = modes,
                ["unicast"] = new JsonArray([.. (plan?.Unicast ?? []).Select(a => (JsonNode)Json.FormatMac(a.GetAddressBytes()))]),
                ["multicast"] = new JsonArray([.. (plan?.Multicast ?? []).Select(a => (JsonNode)Json.FormatMac(a.GetAddressBytes()))]),
            }.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine($"net0: link/ether {Json.FormatMac(session.Net.MacAddress.Span)}");
        Console.Out.WriteLine($"    receive modes: {(filter == ReceiveFilterFlags.None ? "(device defaults)" : filter.ToString())}");
        foreach (PhysicalAddress address in plan?.Unicast ?? [])
        {
            Console.Out.WriteLine($"    uc {Json.FormatMac(address.GetAddressBytes())}");
        }

        foreach (PhysicalAddress address in plan?.Multicast ?? [])
        {
            Console.Out.WriteLine($"    mc {Json.FormatMac(address.GetAddressBytes())}");
        }

        return 0;
    }
}
