using VirtioNet.Platform;
using Xunit;

namespace VirtioNet.Tests.Platform;

public sealed class ThreadAffinityTests
{
    [Fact]
    public void AWorkerThreadThatPinsItselfIsAllowedOnlyThatCpuAndTheRestOfTheProcessIsNot()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "sched_setaffinity and /proc are Linux's.");
        string processCpus = AllowedCpus(Environment.ProcessId, ThreadAffinity.CurrentThreadId);
        int target = LastCpu(processCpus);

        string? pinned = null;
        string? otherAfter = null;
        int pinnedTid = 0;
        var worker = new Thread(() =>
        {
            pinnedTid = ThreadAffinity.PinCurrentThread(target);
            Assert.Equal(ThreadAffinity.CurrentThreadId, pinnedTid);
            pinned = AllowedCpus(Environment.ProcessId, pinnedTid);
        });
        worker.Start();
        Assert.True(worker.Join(TimeSpan.FromSeconds(30)));
        otherAfter = AllowedCpus(Environment.ProcessId, ThreadAffinity.CurrentThreadId);

        Assert.Equal(target.ToString(System.Globalization.CultureInfo.InvariantCulture), pinned);
        Assert.Equal(processCpus, otherAfter);
    }

    [Fact]
    public void ACpuNumberOutsideAMaskIsRefusedBeforeTheKernelIsAsked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ThreadAffinity.PinCurrentThread(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ThreadAffinity.PinCurrentThread(1024));
    }

    [Fact]
    public void ACpuTheProcessMayNotUseIsRefusedWithTheKernelsReason()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "sched_setaffinity is Linux's.");
        var worker = new Thread(() =>
        {
            var e = Assert.Throws<InvalidOperationException>(() => ThreadAffinity.PinCurrentThread(1023));
            Assert.Contains("sched_setaffinity", e.Message, StringComparison.Ordinal);
        });
        worker.Start();
        Assert.True(worker.Join(TimeSpan.FromSeconds(30)));
    }

    // Cpus_allowed_list of one thread, as the kernel reports it ("0-1", "1", "0,2-3").
    private static string AllowedCpus(int pid, int tid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/task/{tid}/status"))
        {
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
            {
                return line["Cpus_allowed_list:".Length..].Trim();
            }
        }

        throw new InvalidOperationException($"/proc/{pid}/task/{tid}/status has no Cpus_allowed_list.");
    }

    private static int LastCpu(string list)
    {
        string last = list.Split(',')[^1];
        return int.Parse(last.Split('-')[^1], System.Globalization.CultureInfo.InvariantCulture);
    }
}
