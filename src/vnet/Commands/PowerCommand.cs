using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet suspend NAME</c> and <c>vnet resume NAME</c>: the running <c>vnet up</c> instance NAME suspends its device
/// (pumps parked, the device reset and its buffers taken back, the TAP's carrier off) or brings it up again with
/// everything it was told, through its control socket (docs/CONTROL.md).
/// </summary>
internal static class PowerCommand
{
    /// <summary>The <c>suspend</c> command.</summary>
    public static Command CreateSuspend() => Create("suspend", "Suspend the device of a running 'vnet up' instance: reset it, take its buffers back, carrier off.");

    /// <summary>The <c>resume</c> command.</summary>
    public static Command CreateResume() => Create("resume", "Resume the suspended device of a running 'vnet up' instance with everything it was told.");

    private static Command Create(string verb, string description)
    {
        var name = new Argument<string>("NAME") { Description = "The instance's name (as 'vnet list' shows it)." };
        var command = new Command(verb, description);
        command.Arguments.Add(name);
        command.SetAction((result, _) => Task.FromResult(Execute(verb, result.GetValue(name)!)));
        return command;
    }

    private static int Execute(string verb, string name)
    {
        JsonObject reply;
        try
        {
            reply = ControlClient.Ask(ControlServer.DefaultDirectory, name, new JsonObject { ["command"] = verb });
        }
        catch (ServiceException e)
        {
            Log.Error(e.Message);
            return 1;
        }

        if (reply["ok"]?.GetValue<bool>() != true)
        {
            Log.Error($"{name}: {reply["error"]?.GetValue<string>() ?? "the instance refused"}");
            return 1;
        }

        Console.WriteLine($"{name}: {(verb == "suspend" ? "suspended" : "resumed")}");
        return 0;
    }
}
