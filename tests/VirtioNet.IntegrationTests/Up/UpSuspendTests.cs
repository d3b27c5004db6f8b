using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet suspend NAME</c> and <c>vnet resume NAME</c>, run as a user would, against a running service (QEMU's
/// virtio-net on a TAP backend in one namespace, the kernel on the service's TAP in another): the suspend resets QEMU's
/// device (its filter back at the reset state, seen through QMP) and drops the TAP's carrier; across a QEMU stop and cont
/// the resume tells the device again what the service had told it, the carrier comes back and the kernel's ping works.
/// A second resume, and an instance that does not exist, are one line and exit 1.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpSuspendTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void VnetSuspendAndResumeCarryTheKernelsPingAcrossAQemuStopAndContWithTheFilterToldAgain()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = far.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        far.MoveTapIn(1500, net.MacAddress.Span);
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tap = $"vs{suffix}";
        string name = $"suspend-{Environment.ProcessId}-{suffix}";
        var log = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        int exitCode = -1;
        Exception? failure = null;
        var options = new TapServiceOptions { TapName = tap, Namespace = near.Name, InstanceName = name, ControlDirectory = ControlServer.DefaultDirectory };
        var service = new Thread(() =>
        {
            try
            {
                exitCode = TapService.Run(new DeviceLink(net), options, log.Enqueue, stop.Token);
            }
            catch (Exception e)
            {
                failure = e;
            }
        })
        { IsBackground = true };
        service.Start();
        try
        {
            Eventually(() => log.Any(l => l.Contains(" carries traffic", StringComparison.Ordinal)) || failure is not null, "the service to start", log);
            Assert.Null(failure);
            near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");
            Eventually(() => !Filter(board).GetProperty("promiscuous").GetBoolean(), "promiscuous off at start", log);
            Assert.Contains(" 0% packet loss", near.ExecInside($"ping -c 3 -W 2 {NetworkNamespace.KernelAddress}"), StringComparison.Ordinal);

            VnetProcess.Result suspended = VnetProcess.Run("suspend", name);
            Assert.True(suspended.ExitCode == 0, suspended.StandardError);
            Assert.Contains($"{name}: suspended", suspended.StandardOutput, StringComparison.Ordinal);
            Assert.True(net.IsSuspended);
            Assert.Contains("NO-CARRIER", near.IpInside($"link show {tap}"), StringComparison.Ordinal);
            Assert.True(Filter(board).GetProperty("promiscuous").GetBoolean(), "QEMU's device was not reset by the suspend");

            board.Machine.Monitor.Execute("stop");
            board.Machine.Monitor.Execute("cont");

            VnetProcess.Result resumed = VnetProcess.Run("resume", name);
            Assert.True(resumed.ExitCode == 0, resumed.StandardError);
            Assert.False(net.IsSuspended);
            Assert.False(Filter(board).GetProperty("promiscuous").GetBoolean());
            Eventually(() => !near.IpInside($"link show {tap}").Contains("NO-CARRIER", StringComparison.Ordinal), "the carrier back after the resume", log);
            Assert.Contains(" 0% packet loss", near.ExecInside($"ping -c 3 -W 2 {NetworkNamespace.KernelAddress}"), StringComparison.Ordinal);

            // Bad input: one line, exit 1, the instance undisturbed.
            VnetProcess.Result again = VnetProcess.Run("resume", name);
            Assert.Equal(1, again.ExitCode);
            Assert.Equal("vnet: error: " + name + ": the device is not suspended", again.StandardError.Trim());
            VnetProcess.Result nobody = VnetProcess.Run("suspend", $"nobody-{suffix}");
            Assert.Equal(1, nobody.ExitCode);
            Assert.Single(nobody.StandardError.Trim().Split('\n'));
            Assert.Contains("no instance", nobody.StandardError, StringComparison.Ordinal);
            Assert.Contains(" 0% packet loss", near.ExecInside($"ping -c 1 -W 2 {NetworkNamespace.KernelAddress}"), StringComparison.Ordinal);
            Assert.Equal(1, net.Suspends);
        }
        finally
        {
            stop.Cancel();
            Assert.True(service.Join(Patience), "The service did not stop.");
        }

        Assert.Null(failure);
        Assert.Equal(0, exitCode);
    }

    private static JsonElement Filter(RiscvVirtBoard board) => board.Machine.Monitor.Execute("query-rx-filter")[0];

    private static void Eventually(Func<bool> condition, string what, ConcurrentQueue<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what}.\n{string.Join('\n', log)}");
            Thread.Sleep(100);
        }
    }
}
