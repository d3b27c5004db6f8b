using System.Diagnostics;
using System.Globalization;

namespace VirtioNet.Cli;

/// <summary>
/// <c>vnet up --supervise</c>: this process becomes a supervisor that runs the same command without <c>--supervise</c>
/// as its worker and starts it again whenever it dies, as a service manager with <c>Restart=always</c> would. The
/// worker's TAP is persistent and a machine started with <c>vnet machine start</c> outlives it, so a restarted worker
/// adopts both and the kernel's connections carry on.
/// </summary>
internal static class Supervisor
{
    // The first restart is at once (a crash is rare; the kernel's connections are waiting), later ones back off.
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);

    // The longest wait between two restarts of a worker that keeps dying.
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    // A worker that lived this long counts as healthy: the next death restarts it at once again.
    private static readonly TimeSpan Healthy = TimeSpan.FromSeconds(10);

    public static int Run(bool allowed, CancellationToken stopping)
    {
        if (!allowed)
        {
            throw new CliException("--supervise restarts a service; it does not combine with --exec.");
        }

        (string file, List<string> arguments) = WorkerCommand();
        TimeSpan backoff = TimeSpan.Zero; // the next wait for a worker that dies young
        int restarts = 0;
        while (true)
        {
            var start = new ProcessStartInfo(file) { UseShellExecute = false };
            foreach (string argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            var lived = Stopwatch.StartNew();
            using Process worker = Process.Start(start) ?? throw new CliException($"could not start the worker {file}");
            Log.Info($"supervisor: worker pid {worker.Id} started{(restarts > 0 ? $" (restart {restarts})" : "")}");
            using (stopping.Register(() => Signal(worker, "TERM")))
            {
                worker.WaitForExit();
            }

            int code = worker.ExitCode;
            if (stopping.IsCancellationRequested)
            {
                Log.Info($"supervisor: worker exited with {code} after the stop request");
                return code;
            }

            // 0: the worker was asked to stop (SIGTERM to it alone); 2: bad usage, which a restart would repeat.
            if (code is 0 or CommandRunner.Usage)
            {
                Log.Info($"supervisor: worker exited with {code}; not restarting");
                return code;
            }

            // The wait before this restart: none after a healthy run, then doubling while the worker keeps dying young.
            TimeSpan wait = lived.Elapsed > Healthy ? TimeSpan.Zero : backoff;
            backoff = wait == TimeSpan.Zero ? FirstBackoff : TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, MaxBackoff.Ticks));
            Log.Info($"supervisor: worker pid {worker.Id} died ({Describe(code)}); restarting in {wait.TotalMilliseconds:0} ms");
            if (stopping.WaitHandle.WaitOne(wait))
            {
                return CommandRunner.Interrupted;
            }

            restarts++;
        }
    }

    // The same tool with the same arguments, less --supervise: `dotnet vnet.dll ...` or the native binary.
    private static (string File, List<string> Arguments) WorkerCommand()
    {
        string[] all = Environment.GetCommandLineArgs();
        List<string> arguments = [.. all.Skip(1).Where(a => a != "--supervise")];
        string process = Environment.ProcessPath ?? throw new CliException("cannot tell this program's path to start its worker");
        if (Path.GetFileNameWithoutExtension(process) == "dotnet")
        {
            arguments.Insert(0, all[0]);
        }

        return (process, arguments);
    }

    private static string Describe(int code) => code > 128 ? $"signal {code - 128}" : $"exit code {code}";

    private static void Signal(Process worker, string signal)
    {
        try
        {
            using Process kill = Process.Start("kill", ["-" + signal, worker.Id.ToString(CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            // Gone already.
        }
    }
}
