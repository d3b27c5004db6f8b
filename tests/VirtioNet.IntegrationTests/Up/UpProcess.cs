using System.Diagnostics;
using System.Text;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A long-running <c>vnet up</c> (the built tool beside the tests) as a child process: started, waited for until it says
/// its interface carries traffic, stopped with SIGTERM as a service manager would, and killed on dispose if still there.
/// </summary>
internal sealed class UpProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly Thread _reader;

    private UpProcess(Process process)
    {
        _process = process;
        _reader = new Thread(() =>
        {
            string? line;
            while ((line = process.StandardError.ReadLine()) is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(line);
                }
            }
        })
        { IsBackground = true };
        _reader.Start();
    }

    /// <summary>What the process wrote to stderr so far.</summary>
    public string Log
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Starts <c>vnet up ARGUMENTS</c> and waits until it says its interface carries traffic.</summary>
    public static UpProcess Start(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = false, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "vnet.dll"));
        start.ArgumentList.Add("up");
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var up = new UpProcess(Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet"));
        try
        {
            var clock = Stopwatch.StartNew();
            while (!up.Log.Contains(" carries traffic", StringComparison.Ordinal))
            {
                Assert.False(up._process.HasExited, $"vnet up exited with {(up._process.HasExited ? up._process.ExitCode : 0)} before its interface carried traffic:\n{up.Log}");
                Assert.True(clock.Elapsed < StartTimeout, $"vnet up did not carry traffic within {StartTimeout.TotalSeconds} s:\n{up.Log}");
                Thread.Sleep(100);
            }

            return up;
        }
        catch
        {
            up.Dispose();
            throw;
        }
    }

    /// <summary>The process id of the vnet up process.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Kills the process with SIGKILL, as a crash would (nothing of its own runs), and waits for it to be gone.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: false);
        Assert.True(_process.WaitForExit(TimeSpan.FromSeconds(30)), "vnet up did not die of SIGKILL within 30 s.");
    }

    /// <summary>Waits until the log holds <paramref name="text"/> at least <paramref name="count"/> times; false on timeout.</summary>
    public bool WaitForLog(string text, int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            string log = Log;
            int found = 0;
            for (int at = log.IndexOf(text, StringComparison.Ordinal); at >= 0; at = log.IndexOf(text, at + text.Length, StringComparison.Ordinal))
            {
                found++;
            }

            if (found >= count)
            {
                return true;
            }

            Thread.Sleep(20);
        }

        return false;
    }

    /// <summary>Sends SIGTERM and waits for the exit; returns the exit code.</summary>
    public int Stop()
    {
        using (Process kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }

        Assert.True(_process.WaitForExit(TimeSpan.FromSeconds(60)), $"vnet up did not stop within 60 s of SIGTERM:\n{Log}");
        _reader.Join(TimeSpan.FromSeconds(5));
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(TimeSpan.FromSeconds(30));
        }

        _process.Dispose();
    }
}
