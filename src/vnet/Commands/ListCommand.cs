using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet list</c>: the running <c>vnet up</c> instances, asked through their control sockets (docs/CONTROL.md):
/// name, device, TAP, namespace, link, pairs, uptime. Stale sockets of killed instances are removed, not listed.
/// </summary>
internal static class ListCommand
{
    private static readonly Option<bool> JsonOutput = new("--json") { Description = "One JSON array of the instances' status replies." };

    public static Command Create()
    {
        var command = new Command("list", $"List the running 'vnet up' instances (their control sockets in {ControlServer.DefaultDirectory}).");
        command.Options.Add(JsonOutput);
        command.SetAction((result, _) => Task.FromResult(Execute(result.GetValue(JsonOutput))));
        return command;
    }

    private static int Execute(bool json)
    {
        var instances = new JsonArray();
        foreach (string name in ControlClient.Running(ControlServer.DefaultDirectory))
        {
            try
            {
                JsonObject status = ControlClient.Ask(ControlServer.DefaultDirectory, name, new JsonObject { ["command"] = "status" });
                if (status["ok"]?.GetValue<bool>() == true)
                {
                    instances.Add((JsonNode)status);
                }
            }
            catch (ServiceException e)
            {
                // It stopped between the listing and the question.
                Log.Info(e.Message);
            }
        }

        Json.WriteListing(
            instances,
            json,
            string.Create(CultureInfo.InvariantCulture, $"{"NAME",-16} {"TAP",-16} {"NAMESPACE",-16} {"LINK",-5} {"PAIRS",5} {"UPTIME",9}  DEVICE"),
            s => string.Create(CultureInfo.InvariantCulture,
                $"{s["name"],-16} {s["tap"],-16} {s["namespace"]?.ToString() ?? "-",-16} {s["link"],-5} {s["pairs"],5} {s["uptimeSeconds"] + "s",9}  {s["device"]}"));
        return 0;
    }
}
