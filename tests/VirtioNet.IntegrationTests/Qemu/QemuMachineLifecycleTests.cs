using VirtioNet.Core;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Qemu;

/// <summary>
/// What a machine leaves behind. These tests look at every /dev/shm file and QEMU process of this test process, so
/// they run alone (<see cref="QemuLifecycleCollection"/>): a machine another test starts meanwhile would be counted.
/// </summary>
[Trait("Peer", "Qemu")]
[Collection(QemuLifecycleCollection.Name)]
public sealed class QemuMachineLifecycleTests
{
    private static QemuMachine StartMachine(QemuMachineOptions? options = null)
    {
        QemuRequirement.EnsureAvailable();
        return QemuMachine.Start(options ?? new QemuMachineOptions(), TestContext.Current.CancellationToken);
    }

    private static string[] OurShmFiles() =>
        Directory.GetFiles("/dev/shm", $"vnet-{Environment.ProcessId}-*");

    // QEMUs started by this test process: their RAM file is named after our pid.
    private static int[] OurQemuPids()
    {
        string marker = $"/dev/shm/vnet-{Environment.ProcessId}-";
        var pids = new List<int>();
        foreach (string directory in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out int pid))
            {
                continue;
            }

            try
            {
                string cmdline = File.ReadAllText(Path.Combine(directory, "cmdline"));
                if (cmdline.Contains("qemu-system-riscv64", StringComparison.Ordinal) && cmdline.Contains(marker, StringComparison.Ordinal))
                {
                    pids.Add(pid);
                }
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
            catch (UnauthorizedAccessException)
            {
                // Not ours.
            }
        }

        return [.. pids];
    }

    [Fact]
    public void MachineStartsAndStopsLeavingNoProcessOrShmFile()
    {
        string[] before = OurShmFiles();
        int pid;
        using (QemuMachine machine = StartMachine())
        {
            pid = machine.ProcessId;
            Assert.True(pid > 0);
            Assert.False(machine.HasExited);
            string cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            Assert.Contains("qemu-system-riscv64", cmdline, StringComparison.Ordinal);
            Assert.Contains("-qtest", machine.CommandLine, StringComparison.Ordinal);
            Assert.Contains(pid, OurQemuPids());

            // Unlinked as soon as both sides mapped it, so that even a SIGKILLed test run leaves no file.
            Assert.Equal(before, OurShmFiles());
        }

        Assert.False(Directory.Exists($"/proc/{pid}"), $"QEMU (pid {pid}) is still there after Dispose.");
        Assert.Empty(OurQemuPids());
        Assert.Equal(before, OurShmFiles());
    }

    [Fact]
    public void QemuFailingAtStartUpIsReportedWithItsStderrAndLeavesNothingBehind()
    {
        QemuRequirement.EnsureAvailable();
        string[] before = OurShmFiles();

        var options = new QemuMachineOptions { NetDeviceProperties = "no_such_property=on" };

        VirtioException e = Assert.Throws<VirtioException>(() => QemuMachine.Start(options, TestContext.Current.CancellationToken));

        Assert.Equal(VirtioErrorReason.PlatformFailure, e.Reason);
        Assert.Contains("QEMU exited (code 1)", e.Message, StringComparison.Ordinal);
        Assert.Contains("no_such_property", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(before, OurShmFiles());
        Assert.Empty(OurQemuPids());
    }
}
