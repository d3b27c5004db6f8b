using System.CommandLine;
using VirtioNet.Service;

namespace VirtioNet.Cli;

/// <summary>
/// Runs a command that talks to a running instance over its control socket (<c>monitor</c>, <c>capture</c>, <c>top</c>):
/// no machine of its own, and every failure one line on stderr with the exit codes of <see cref="CommandRunner"/>.
/// </summary>
internal static class InstanceCommandRunner
{
    public static void SetAction(Command command, Func<ParseResult, CancellationToken, int> body)
    {
        command.SetAction((result, cancellationToken) => Task.FromResult(Run(result, body, cancellationToken)));
    }

    private static int Run(ParseResult result, Func<ParseResult, CancellationToken, int> body, CancellationToken cancellationToken)
    {
        try
        {
            return body(result, cancellationToken);
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
