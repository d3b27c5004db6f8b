using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>--attach [NAME]</c> on the ethtool-style verbs: instead of booting a private machine (the one-shot mode), the verb
/// asks the running <c>vnet up</c> instance NAME (by default <c>vnet0</c>, the default TAP name, which names the instance
/// unless <c>--name</c> says otherwise) through its control socket (docs/CONTROL.md), which answers with the same report
/// the one-shot mode builds. An instance that is not running, or a stale socket (removed, never trusted), is one error
/// line and exit code 1.
/// </summary>
internal static class Attach
{
    /// <summary>The instance name when <c>--attach</c> is given without one: <c>vnet up</c>'s default TAP name.</summary>
    public const string DefaultName = "vnet0";

    public static readonly Option<string?> Option = new("--attach")
    {
        Description = "Act on the running 'vnet up' instance NAME (default vnet0) through its control socket, instead of booting a private machine.",
        Arity = ArgumentArity.ZeroOrOne,
    };

    // The options that describe the private machine of the one-shot mode; with --attach they would be silently ignored.
    private static readonly Option[] MachineOptions =
    [
        CommonOptions.Machine, CommonOptions.Transport, CommonOptions.PciInterrupts, CommonOptions.DeviceOpts, CommonOptions.Qemu,
        CommonOptions.Slot, CommonOptions.Base, CommonOptions.Mode, OneShotDevice.Queues,
    ];

    /// <summary>The instance to attach to, or null for the one-shot mode. Refuses the machine options (and <paramref name="oneShotOnly"/>) beside <c>--attach</c>.</summary>
    public static string? Name(ParseResult result, params Option[] oneShotOnly)
    {
        if (result.GetResult(Option) is null)
        {
            return null;
        }

        foreach (Option option in MachineOptions.Concat(oneShotOnly))
        {
            if (result.GetResult(option) is OptionResult { Implicit: false })
            {
                throw new CliException($"{option.Name} describes the private machine of the one-shot mode; it cannot go with --attach (the running instance has its own).");
            }
        }

        string? name = result.GetValue(Option);
        return string.IsNullOrEmpty(name) ? DefaultName : name;
    }

    /// <summary>
    /// Sends <paramref name="command"/> with the fields of <paramref name="request"/> to instance <paramref name="name"/> and
    /// returns its report. Throws <see cref="ServiceException"/> (one line, exit 1) when the instance is not running or
    /// the device refuses.
    /// </summary>
    public static JsonObject Ask(string name, string command, JsonObject request)
    {
        request["command"] = command;
        JsonObject reply = ControlClient.Ask(ControlServer.DefaultDirectory, name, request);
        if (reply["ok"] is not JsonValue ok || !ok.TryGetValue(out bool success) || !success)
        {
            throw new ServiceException($"{name}: {reply["error"]?.ToString() ?? "the instance answered without a report"}");
        }

        reply.Remove("ok");
        return reply;
    }
}
