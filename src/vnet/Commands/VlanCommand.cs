using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Net.Vlan;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet vlan</c>: the device's VLAN filter (VIRTIO_NET_CTRL_VLAN), <c>--add ID</c> and <c>--del ID</c>, like <c>bridge vlan</c>; with <c>--attach NAME</c> on the running instance's device.</summary>
internal static class VlanCommand
{
    private static readonly Option<int[]> Add = new("--add")
    {
        Description = "A VLAN id (0-4095) to let through (repeatable).",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<int[]> Delete = new("--del")
    {
        Description = "A VLAN id to remove from the filter (repeatable).",
        AllowMultipleArgumentsPerToken = true,
    };

    public static Command Create() =>
        DeviceVerb.Create("vlan", "Show (and change) the device's VLAN filter table.", Execute, withQueues: false, Add, Delete);

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        int[] add = result.GetValue(Add) ?? [];
        int[] delete = result.GetValue(Delete) ?? [];
        foreach (int id in add.Concat(delete))
        {
            if (id is < 0 or > VlanTag.MaxId)
            {
                throw new CliException($"A VLAN id is 0 to {VlanTag.MaxId}; got {id}.");
            }
        }

        (JsonObject report, string device) = DeviceVerb.Report(
            result,
            "vlan",
            _ => new JsonObject
            {
                ["add"] = new JsonArray([.. add.Select(id => (JsonNode)id)]),
                ["del"] = new JsonArray([.. delete.Select(id => (JsonNode)id)]),
            },
            () =>
            {
                using OneShotDevice session = OneShotDevice.Open(settings, 1, string.Empty, cancellationToken);
                return new DeviceLink(session.Net).Vlan(add, delete);
            });

        if (settings.Json)
        {
            Console.Out.WriteLine(report.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine("port    vlan-id");
        Console.Out.WriteLine($"{device,-8}{string.Join("\n        ", report["vlans"]!.AsArray().Select(v => v!.ToJsonString()))}");
        return 0;
    }
}
