using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Net.Vlan;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet vlan</c>: the device's VLAN filter (VIRTIO_NET_CTRL_VLAN), <c>--add ID</c> and <c>--del ID</c>, like <c>bridge vlan</c>.</summary>
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

    public static Command Create()
    {
        var command = new Command("vlan", "Show (and change) the device's VLAN filter table.");
        command.Options.Add(Add);
        command.Options.Add(Delete);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

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

        using NetDeviceSession session = NetDeviceSession.Open(settings, 1, string.Empty, cancellationToken);
        foreach (int id in add)
        {
            session.Net.Control.AddVlan(id);
        }

        foreach (int id in delete)
        {
            session.Net.Control.RemoveVlan(id);
        }

        if (settings.Json)
        {
            Console.Out.WriteLine(new JsonObject { ["vlans"] = new JsonArray([.. session.Net.Control.VlanIds.Select(v => (JsonNode)v)]) }.ToJsonString(Json.Options));
            return 0;
        }

        Console.Out.WriteLine("port    vlan-id");
        Console.Out.WriteLine($"net0    {string.Join("\n        ", session.Net.Control.VlanIds)}");
        return 0;
    }
}
