using System.CommandLine;
using VirtioNet.Service;

namespace VirtioNet.Cli;

/// <summary>
/// Builds and runs a command that talks to a running instance over its control socket (<c>monitor</c>, <c>capture</c>,
/// <c>top</c>): the instance's NAME as its argument, no machine of its own, and every failure one line on stderr with the
/// exit codes of <see cref="CommandRunner"/>.
/// </summary>
internal static class InstanceCommandRunner
{
    private static readonly Argument<string> Name = new("NAME") { Description = "The instance (vnet list shows them)." };

    /// <summary>Builds the command on instance NAME with <paramref name="options"/>; <paramref name="body"/> gets NAME's value.</summary>
    public static Command Create(string name, string description, Func<string, ParseResult, CancellationToken, int> body, params Option[] options)
    {
        var command = new Command(name, description);
        command.Arguments.Add(Name);
        foreach (Option option in options)
        {
            command.Options.Add(option);
        }

        command.SetAction((result, cancellationToken) => Task.FromResult(Run(result, body, cancellationToken)));
        return command;
    }

    /// <summary>--count's value: null (no limit) or at least 1.</summary>
    public static void CheckCount(int? count)
    {
        if (count is <= 0)
        {
            throw new CliException("--count must be at least 1.");
        }
    }

    private static int Run(ParseResult result, Func<string, ParseResult, CancellationToken, int> body, CancellationToken cancellationToken)
    {
        try
        {
            return body(result.GetValue(Name)!, result, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return CommandRunner.Interrupted;
        }
        catch (CliException e)
        {
            Log.Error(e.Message);
            return CommandRunner.Usage;
        }
        catch (ServiceException e)
        {
            Log.Error(e.Message);
            return CommandRunner.Failure;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error(e.Message);
            return CommandRunner.Failure;
        }
    }
}
