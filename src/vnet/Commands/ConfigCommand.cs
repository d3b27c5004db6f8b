using System.CommandLine;
using VirtioNet.Cli.Config;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet config check FILE</c>: reads a <c>virtio-net.toml</c> as <c>vnet up --config</c> would and starts nothing.
/// Every fault (not TOML, an unknown section or key, a wrong type, a value out of range, keys that contradict each
/// other) is one line FILE:LINE:COLUMN: MESSAGE on stderr, and the exit code is 2; a good file prints one line and 0.
/// </summary>
internal static class ConfigCommand
{
    private static readonly Argument<string> File = new("FILE") { Description = "The configuration file (virtio-net.toml; docs/virtio-net.toml lists every key)." };

    public static Command Create()
    {
        var check = new Command("check", "Validate a configuration file without starting anything: each fault with its line and column, exit code 2.");
        check.Arguments.Add(File);
        check.SetAction((result, _) => Task.FromResult(Check(result.GetValue(File)!)));
        var command = new Command("config", "The configuration file of 'vnet up --config' (virtio-net.toml).");
        command.Subcommands.Add(check);
        return command;
    }

    /// <summary>Reads <paramref name="path"/>: its faults on stderr and 2, or one line on stdout and 0.</summary>
    public static int Check(string path)
    {
        (_, IReadOnlyList<ConfigError> errors) = ConfigReader.ReadFile(path);
        if (Report(errors))
        {
            return CommandRunner.Usage;
        }

        Console.Out.WriteLine($"{path}: valid");
        return 0;
    }

    /// <summary>Writes each fault as one error line; true when there was any.</summary>
    public static bool Report(IReadOnlyList<ConfigError> errors)
    {
        foreach (ConfigError error in errors)
        {
            Log.Error(error.ToString());
        }

        return errors.Count > 0;
    }
}
