using System.CommandLine;
using VirtioNet.Core;
using VirtioNet.Diagnostics;

namespace VirtioNet.Cli;

/// <summary>
/// Runs a command's body and turns every failure into one line on stderr and an exit code:
/// 1 for a device, platform or network failure, 2 for a usage error, 130 for Ctrl-C, 70 for a bug. No stack traces
/// (set VNET_DEBUG=1 to see them).
/// </summary>
internal static class CommandRunner
{
    public const int Failure = 1;
    public const int Usage = 2;
    public const int Interrupted = 130;
    public const int InternalError = 70;

    public static void SetAction(Command command, Func<MachineSettings, ParseResult, CancellationToken, int> body)
    {
        command.SetAction((result, cancellationToken) => RunAsync(result, (s, r, c) => Task.FromResult(body(s, r, c)), cancellationToken));
    }

    /// <summary>For commands whose body awaits (the diagnostic client's waits hold no thread).</summary>
    public static void SetAction(Command command, Func<MachineSettings, ParseResult, CancellationToken, Task<int>> body)
    {
        command.SetAction((result, cancellationToken) => RunAsync(result, body, cancellationToken));
    }

    /// <summary>For commands without the machine options (they drive no device of their own).</summary>
    public static void SetAction(Command command, Func<ParseResult, CancellationToken, int> body)
    {
        command.SetAction((result, cancellationToken) => RunAsync(result, (_, r, c) => Task.FromResult(body(r, c)), cancellationToken, readSettings: false));
    }

    private static async Task<int> RunAsync(ParseResult result, Func<MachineSettings, ParseResult, CancellationToken, Task<int>> body, CancellationToken cancellationToken, bool readSettings = true)
    {
        try
        {
            MachineSettings settings = readSettings ? CommonOptions.Read(result) : null!;
            return await body(settings, result, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Log.Error("interrupted");
            return Interrupted;
        }
        catch (CliException e)
        {
            Log.Error(e.Message);
            return Usage;
        }
        catch (ArgumentException e)
        {
            Log.Error(e.Message);
            return Usage;
        }
        catch (VirtioNet.Service.ServiceException e)
        {
            // A running instance that is not there, or that refused (--attach): its sentence, as it is.
            Log.Error(e.Message);
            return Failure;
        }
        catch (VirtioException e)
        {
            Log.Error(e.Message);
            Log.Debug(e);
            return Failure;
        }
        catch (DiagnosticsException e)
        {
            Log.Error(e.Message);
            Log.Debug(e);
            return Failure;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException or UnauthorizedAccessException)
        {
            Log.Error($"{e.GetType().Name}: {e.Message}");
            Log.Debug(e);
            return Failure;
        }
#pragma warning disable CA1031 // The tool's last line of defence: one line and exit code 70, never a stack trace (VNET_DEBUG=1 shows it).
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.Error($"internal error ({e.GetType().Name}): {e.Message}");
            Log.Debug(e);
            return InternalError;
        }
    }
}
