using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Tap;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// Restart without data loss: a QEMU machine started with <c>vnet machine start</c> outlives its driver, and the TAP of
/// <c>vnet up</c> outlives its process, so a driver killed with SIGKILL in the middle of the kernel's TCP transfer is
/// started again, attaches to the same machine, resets the device, adopts the TAP, and the transfer completes intact.
/// Also: <c>--keep</c> and <c>vnet down</c>, <c>--supervise</c>, and the bad input of the machine and down commands.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpRestartTests
{
    internal const int TransferBytes = 24 << 20;

    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(300);

    [Fact]
    public void AKernelTcpTransferCompletesWithItsHashIntactAcrossTwoSigkillsOfTheDriver()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace ns = NetworkNamespace.Create();
        using DetachedMachine machine = DetachedMachine.Start();
        string tap = $"vr{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        string[] arguments = ["--machine-name", machine.Name, "--netns", ns.Name, "--tap", tap, "--dhcp"];
        UpProcess up = UpProcess.Start(arguments);
        try
        {
            // A second driver for the same machine is refused, and the first one is not disturbed.
            VnetProcess.Result second = VnetProcess.Run(["up", "--machine-name", machine.Name, "--netns", ns.Name, "--tap", tap + "b"]);
            Assert.NotEqual(0, second.ExitCode);
            Assert.Contains($"machine '{machine.Name}' already has a driver (pid {up.ProcessId})", second.StandardError, StringComparison.Ordinal);

            // The kernel in the namespace sends to the host's loopback through QEMU's user network (10.0.2.2).
            WatchedTcpTransfer transfer = WatchedTcpTransfer.Start(Task.Run, IPAddress.Loopback, ns.Run, IPAddress.Parse("10.0.2.2"), TransferBytes, Timeout);
            WriteReport("QEMU riscv64 virt (vnet machine start), user network", KillTwice(transfer, ref up, arguments, tap));
            (string sent, string received) = transfer.Finish(Timeout, () => up.Log);
            Assert.Equal(sent, received);
            Assert.Equal(TransferBytes, transfer.Received);

            Assert.Equal(0, up.Stop());
            Assert.Contains("stopped; TAP removed", up.Log, StringComparison.Ordinal);
            Assert.DoesNotContain(tap, ns.IpInside("link show"), StringComparison.Ordinal);
        }
        finally
        {
            up.Dispose();
        }
    }

    [Fact]
    public void AKeptTapStaysAfterACleanStopAndVnetDownRemovesIt()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace ns = NetworkNamespace.Create();
        using DetachedMachine machine = DetachedMachine.Start();
        string tap = $"vk{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        using (UpProcess up = UpProcess.Start("--machine-name", machine.Name, "--netns", ns.Name, "--tap", tap, "--keep"))
        {
            ns.IpInside($"addr add 10.0.2.15/24 dev {tap}");
            Assert.Equal(0, up.Stop());
            Assert.Contains("stopped; TAP kept", up.Log, StringComparison.Ordinal);
        }

        // The kernel kept the interface and its address; a running instance's TAP would not be removable.
        Assert.Contains("10.0.2.15/24", ns.IpInside($"addr show dev {tap}"), StringComparison.Ordinal);
        VnetProcess.Result down = VnetProcess.Run("down", tap);
        Assert.True(down.ExitCode == 0, $"vnet down exited with {down.ExitCode}:\n{down.StandardError}");
        Assert.DoesNotContain(tap, ns.IpInside("link show"), StringComparison.Ordinal);

        // Nothing left to take down: one line, a non-zero exit.
        VnetProcess.Result again = VnetProcess.Run("down", tap);
        AssertOneErrorLine(again, "left no interface to remove");
    }

    [Fact]
    public void ASupervisedServiceStartsItsWorkerAgainWhenItIsKilledAndStopsOnSigterm()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace ns = NetworkNamespace.Create();
        using DetachedMachine machine = DetachedMachine.Start();
        string tap = $"vs{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        using UpProcess up = UpProcess.Start("--supervise", "--machine-name", machine.Name, "--netns", ns.Name, "--tap", tap, "--dhcp");
        int worker = machine.DriverPid;
        Assert.NotEqual(up.ProcessId, worker);

        using (Process kill = Process.Start("kill", ["-KILL", worker.ToString(CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }

        Assert.True(up.WaitForLog(" carries traffic", 2, TimeSpan.FromSeconds(120)), $"The supervisor did not bring a new worker up:\n{up.Log}");
        Assert.NotEqual(worker, machine.DriverPid);
        Assert.Contains("0% packet loss", ns.ExecInside("ping -c 3 -W 5 10.0.2.2"), StringComparison.Ordinal);

        Assert.Equal(0, up.Stop());
        Assert.Contains("stopped; TAP removed", up.Log, StringComparison.Ordinal);
        Assert.DoesNotContain(tap, ns.IpInside("link show"), StringComparison.Ordinal);
    }

    [Fact]
    public void BadMachineInputIsRefusedWithOneLineAndNothingDisturbed()
    {
        KernelPeerRequirement.EnsureAvailable();
        using DetachedMachine machine = DetachedMachine.Start();

        AssertOneErrorLine(VnetProcess.Run("machine", "start", machine.Name), $"machine '{machine.Name}' is already running");
        AssertOneErrorLine(VnetProcess.Run("up", "--machine-name", machine.Name + "-none", "--tap", "vnonexist0"), "no machine named");
        AssertOneErrorLine(VnetProcess.Run("machine", "stop", machine.Name + "-none"), "no machine named");
        AssertOneErrorLine(VnetProcess.Run("machine", "start", "bad/name"), "must be 1 to 32 letters");
        AssertOneErrorLine(VnetProcess.Run("down", $"vnet-nothing-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}"), "left no interface to remove");

        // The machine is still there and still answers a driver.
        VnetProcess.Result list = VnetProcess.Run("machine", "list");
        Assert.Contains(machine.Name, list.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("running", list.StandardOutput, StringComparison.Ordinal);
    }

    internal static void AssertOneErrorLine(VnetProcess.Result result, string expected)
    {
        Assert.NotEqual(0, result.ExitCode);
        string[] errors = result.StandardError.Split('\n').Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal)).ToArray();
        Assert.Single(errors);
        Assert.Contains(expected, errors[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    // Kills the driver with SIGKILL at a third and at two thirds of the transfer and starts it again with the same
    // arguments; returns, per kill, the time until the new driver carried traffic and until data flowed again.
    internal static List<string> KillTwice(WatchedTcpTransfer transfer, ref UpProcess up, string[] arguments, string tap)
    {
        var report = new List<string>();
        for (int kill = 1; kill <= 2; kill++)
        {
            long mark = kill * (long)transfer.Bytes / 3;
            UpProcess current = up;
            Assert.True(WatchedTcpTransfer.WaitFor(() => transfer.Received >= mark || transfer.Failed, Timeout),
                $"The transfer did not reach {mark} bytes before kill {kill} (received {transfer.Received}):\n{current.Log}");
            Assert.False(transfer.Failed, $"The transfer failed before kill {kill}: {transfer.Failure}");

            var clock = Stopwatch.StartNew();
            up.KillHard();
            long atKill = transfer.Received;
            up.Dispose();
            up = UpProcess.Start(arguments);
            TimeSpan serving = clock.Elapsed;
            current = up;
            Assert.True(WatchedTcpTransfer.WaitFor(() => transfer.Received > atKill + (64 << 10) || transfer.Failed, Timeout), $"No data arrived after restart {kill}:\n{current.Log}");
            Assert.False(transfer.Failed, $"The transfer failed after restart {kill}: {transfer.Failure}");
            TimeSpan flowing = clock.Elapsed;
            Assert.Contains("adopted TAP " + tap, up.Log, StringComparison.Ordinal);
            report.Add(string.Create(CultureInfo.InvariantCulture,
                $"kill {kill} at {atKill} of {transfer.Bytes} bytes: the new driver carried traffic after {serving.TotalMilliseconds:0} ms, data flowed again after {flowing.TotalMilliseconds:0} ms"));
        }

        return report;
    }

    // The restart timings go to the test's output and, when VNET_RESTART_REPORT names a file, there (docs/RELIABILITY.md).
    internal static void WriteReport(string topology, List<string> lines)
    {
        lines = [.. lines.Select(l => $"{topology}: {l}")];
        foreach (string line in lines)
        {
            TestContext.Current.TestOutputHelper?.WriteLine(line);
        }

        if (Environment.GetEnvironmentVariable("VNET_RESTART_REPORT") is { Length: > 0 } path)
        {
            File.AppendAllLines(path, lines);
        }
    }
}
