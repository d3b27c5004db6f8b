using System.Diagnostics;

namespace VirtioNet.Qemu;

/// <summary>
/// The QEMU process: launched under <c>setpriv --pdeathsig KILL</c> from a thread that lives as long as QEMU does,
/// with stderr kept (its last lines) for error messages.
/// </summary>
/// <remarks>
/// QEMU does not exit when its qtest client disconnects, so a driver process that dies without disposing would leave
/// it running. <c>setpriv --pdeathsig KILL</c> asks the kernel to kill QEMU when its parent dies; but Linux counts the
/// parent as the <em>thread</em> that forked it (prctl(2), PR_SET_PDEATHSIG), and .NET forks on the calling thread.
/// Started from a thread-pool or test thread, QEMU would be killed whenever that thread retires. So a dedicated
/// owner thread starts it and then blocks until it exits.
/// </remarks>
internal sealed class QemuProcess : IDisposable
{
    // Lines of stderr kept for messages.
    private const int TailLines = 12;

    // Characters kept per stderr line.
    private const int TailLineLength = 400;

    // The last lines QEMU wrote on stderr (and stdout), guarded by itself.
    private readonly Queue<string> _tail = new();

    // Set by the owner thread once QEMU has exited and its output streams are drained.
    private readonly ManualResetEventSlim _exited = new(false);

    // The process, started by the owner thread.
    private readonly Process _process;

    // The exit code, once _exited is set (128 + signal number when a signal ended QEMU).
    private int? _exitCode;

    private QemuProcess(Process process) => _process = process;

    /// <summary>QEMU's process id.</summary>
    public int Id { get; private set; }

    /// <summary>True once QEMU has exited and its output has been read to the end.</summary>
    public bool HasExited => _exited.IsSet;

    /// <summary>Starts <paramref name="fileName"/> with <paramref name="arguments"/> from a dedicated owner thread.</summary>
    public static QemuProcess Start(string fileName, IReadOnlyList<string> arguments)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = false,
            CreateNoWindow = true,
        };
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = startInfo };
        var qemu = new QemuProcess(process);
        process.ErrorDataReceived += (_, e) => qemu.Keep(e.Data);
        process.OutputDataReceived += (_, e) => qemu.Keep(e.Data);

        Exception? failure = null;
        using var started = new ManualResetEventSlim(false);
        var owner = new Thread(() =>
        {
            try
            {
                process.Start();
                qemu.Id = process.Id;
                process.BeginErrorReadLine();
                process.BeginOutputReadLine();
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
            {
                failure = e;
                qemu._exited.Set();
                return;
            }
            finally
            {
                started.Set();
            }

            // Blocks for QEMU's lifetime: this thread is QEMU's parent as far as PR_SET_PDEATHSIG is concerned.
            // The overload without a timeout also waits until stderr and stdout reach end of file.
            process.WaitForExit();
            qemu._exitCode = process.ExitCode;
            qemu._exited.Set();
        })
        {
            IsBackground = true,
            Name = "QEMU owner",
        };
        owner.Start();
        started.Wait();
        if (failure is not null)
        {
            process.Dispose();
            throw new VirtioException(VirtioErrorReason.PlatformFailure, $"Could not start {fileName}: {failure.Message}", failure);
        }

        return qemu;
    }

    /// <summary>Waits up to <paramref name="timeout"/> for QEMU to exit.</summary>
    public bool WaitForExit(TimeSpan timeout) => _exited.Wait(timeout);

    /// <summary>
    /// Why QEMU is gone, in one line: <c>QEMU exited (code N): stderr tail</c>. Waits up to
    /// <paramref name="grace"/> for the exit when the caller has just seen the connection break.
    /// </summary>
    public string DescribeExit(TimeSpan grace)
    {
        if (!_exited.Wait(grace))
        {
            return $"QEMU (pid {Id}) closed its connection but is still running: {StderrTail()}";
        }

        string code = _exitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown";
        return $"QEMU exited (code {code}): {StderrTail()}";
    }

    /// <summary>The last lines QEMU wrote, joined into one line.</summary>
    public string StderrTail()
    {
        lock (_tail)
        {
            return _tail.Count == 0 ? "(no output)" : string.Join(" | ", _tail);
        }
    }

    /// <summary>Kills QEMU if it still runs and waits up to <paramref name="timeout"/> for it to be gone.</summary>
    public bool Kill(TimeSpan timeout)
    {
        if (!_exited.IsSet)
        {
            try
            {
                _process.Kill();
            }
            catch (InvalidOperationException)
            {
                // Exited between the check and the kill, or never started.
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // Exiting already; the wait below tells.
            }
        }

        return _exited.Wait(timeout);
    }

    /// <summary>Releases the process handle (QEMU must be gone: see <see cref="Kill"/>).</summary>
    public void Dispose()
    {
        // _exited stays usable (it never allocated a wait handle): late callers of DescribeExit still get an answer.
        if (_exited.IsSet)
        {
            _process.Dispose();
        }
    }

    private void Keep(string? line)
    {
        if (string.IsNullOrWhiteSpace(line))
        {
            return;
        }

        lock (_tail)
        {
            if (_tail.Count == TailLines)
            {
                _tail.Dequeue();
            }

            _tail.Enqueue(line.Length > TailLineLength ? line[..TailLineLength] + "…" : line.Trim());
        }
    }
}
