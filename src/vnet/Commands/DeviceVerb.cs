using System.CommandLine;
using System.Text.Json.Nodes;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// The prologue every ethtool-style verb shares: it acts on a private one-shot machine or, with <c>--attach NAME</c>, on
/// a running <c>vnet up</c>, so it takes its own options, then <c>--queues</c> where it looks at several pairs,
/// <c>--attach</c>, and the machine options (without <c>--mode</c>: the verb's device never carries traffic for long).
/// </summary>
internal static class DeviceVerb
{
    /// <summary>Builds the command; <paramref name="execute"/> decides between the one-shot and the attached device.</summary>
    public static Command Create(
        string name,
        string description,
        Func<MachineSettings, ParseResult, CancellationToken, int> execute,
        bool withQueues,
        params Option[] options)
    {
        var command = new Command(name, description);
        foreach (Option option in options)
        {
            command.Options.Add(option);
        }

        if (withQueues)
        {
            command.Options.Add(OneShotDevice.Queues);
        }

        command.Options.Add(Attach.Option);
        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, execute);
        return command;
    }

    /// <summary>
    /// The verb's report and the device's name for its text: with <c>--attach</c>, instance NAME's answer to
    /// <paramref name="command"/> with the fields <paramref name="request"/> gives for NAME; without it, what
    /// <paramref name="oneShot"/> reads from a private machine's net0. <paramref name="oneShotOnly"/> are refused beside <c>--attach</c>.
    /// </summary>
    public static (JsonObject Report, string Device) Report(ParseResult result, string command, Func<string, JsonObject> request, Func<JsonObject> oneShot, params Option[] oneShotOnly) =>
        Attach.Name(result, oneShotOnly) is { } instance ? (Attach.Ask(instance, command, request(instance)), instance) : (oneShot(), "net0");
}
