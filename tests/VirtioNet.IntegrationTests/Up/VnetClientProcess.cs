using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A long-running client of a running instance (<c>vnet monitor</c>, <c>vnet capture</c>) as a child process: its
/// stdout lines and stderr collected as they come, waited on with bounded timeouts, stopped with SIGINT (Ctrl-C) or
/// killed, and killed on dispose if still there.
/// </summary>
internal sealed class VnetClientProcess : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly StringBuilder _stderr = new();
    private readonly Thread _out;
    private readonly Thread _err;

    private VnetClientProcess(Process process)
    {
        _process = process;
        _out = Drain(process.StandardOutput, _lines.Enqueue);
        _err = Drain(process.StandardError, line =>
        {
            lock (_stderr)
            {
                _stderr.AppendLine(line);
            }
        });
    }

    /// <summary>The stdout lines so far.</summary>
    public IReadOnlyList<string> Lines => [.. _lines];

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

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>vnet ARGUMENTS</c>, as root or, with <paramref name="user"/>, as that user (runuser).</summary>
    public static VnetClientProcess Start(string? user, params string[] arguments)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "vnet.dll");
        var start = new ProcessStartInfo(user is null ? "dotnet" : "runuser") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (user is not null)
        {
            foreach (string word in new[] { "-u", user, "--", "env", "DOTNET_CLI_HOME=/tmp", "DOTNET_NOLOGO=1", "dotnet" })
            {
                start.ArgumentList.Add(word);
            }
        }

        start.ArgumentList.Add(dll);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return new VnetClientProcess(Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet"));
    }

    /// <summary>Waits until <paramref name="condition"/> holds; fails with the output after <see cref="Patience"/>.</summary>
    public void WaitFor(Func<VnetClientProcess, bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition(this))
        {
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what}.\nstdout:\n{string.Join('\n', Lines)}\nstderr:\n{Log}");
            Thread.Sleep(50);
        }
    }

    /// <summary>Ctrl-C: SIGINT, as a user at a terminal stops it.</summary>
    public void Interrupt()
    {
        using Process kill = Process.Start("kill", ["-INT", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>SIGKILL: the client dies mid-stream without closing anything itself.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit(TimeSpan.FromSeconds(30));
    }

    /// <summary>Waits for the exit (bounded) and returns the exit code, with all output read.</summary>
    public int WaitForExit()
    {
        Assert.True(_process.WaitForExit(Patience), $"vnet did not exit within {Patience.TotalSeconds} s:\n{Log}");
        _out.Join(TimeSpan.FromSeconds(5));
        _err.Join(TimeSpan.FromSeconds(5));
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

    private static Thread Drain(StreamReader reader, Action<string> take)
    {
        var thread = new Thread(() =>
        {
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                take(line);
            }
        })
        { IsBackground = true };
        thread.Start();
        return thread;
    }
}
