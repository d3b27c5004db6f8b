using System.Diagnostics;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>Runs the built vnet tool (copied beside the tests) as a separate process, as a user would.</summary>
internal static class VnetProcess
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    public static Result Run(params string[] arguments) => Run(null, arguments);

    /// <summary>Runs vnet; <paramref name="whileRunning"/> gets the process and its stderr-so-far while it runs.</summary>
    public static Result Run(Action<Process, Func<string>>? whileRunning, params string[] arguments)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "vnet.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        var errorText = new System.Text.StringBuilder();
        Task stderr = Task.Run(() =>
        {
            string? line;
            while ((line = process.StandardError.ReadLine()) is not null)
            {
                lock (errorText)
                {
                    errorText.AppendLine(line);
                }
            }
        });
        whileRunning?.Invoke(process, () =>
        {
            lock (errorText)
            {
                return errorText.ToString();
            }
        });
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"vnet {string.Join(' ', arguments)} did not finish in 120 s");
        }

        stderr.Wait();
        return new Result(process.ExitCode, stdout.Result, errorText.ToString());
    }
}
