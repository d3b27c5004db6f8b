using System.Diagnostics;
using Xunit;

namespace VirtioNet.IntegrationTests.Processes;

/// <summary>
/// Starts a peer (testpmd, ovsdb-server, ovs-vswitchd) under <c>setpriv --pdeathsig KILL</c> from a thread of its own
/// that lives as long as the process. Linux counts the thread that forked a child as its parent for PR_SET_PDEATHSIG
/// (prctl(2)), and .NET forks on the calling thread: started from a thread-pool thread, the peer would be killed when
/// that thread retires, as it can while an async test awaits. QemuProcess starts QEMU the same way.
/// </summary>
internal static class OwnedProcess
{
    /// <summary>
    /// Starts <paramref name="info"/> (output and error redirected) with each line passed to <paramref name="onLine"/>,
    /// and returns it with the thread that owns it. Fails the test when it cannot be started.
    /// </summary>
    public static (Process Process, Thread Owner) Start(ProcessStartInfo info, Action<string?> onLine, string name)
    {
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => onLine(e.Data);
        process.ErrorDataReceived += (_, e) => onLine(e.Data);
        Exception? failure = null;
        using var started = new ManualResetEventSlim(false);
        var owner = new Thread(() =>
        {
            try
            {
                process.Start();
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
            {
                failure = e;
                return;
            }
            finally
            {
                started.Set();
            }

            process.WaitForExit();
        })
        {
            IsBackground = true,
            Name = $"{name} owner",
        };
        owner.Start();
        started.Wait();
        if (failure is not null)
        {
            process.Dispose();
            Assert.Fail($"Could not start {name}: {failure.Message}");
        }

        return (process, owner);
    }
}
