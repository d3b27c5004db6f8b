using VirtioNet.IntegrationTests.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// What a test with the kernel as its peer needs besides QEMU: root, <c>ip</c> (iproute2), <c>/dev/net/tun</c> and
/// network namespaces. Skipped on a developer machine without them, failed on CI (CI=true), as <see cref="QemuRequirement"/> does.
/// </summary>
public static class KernelPeerRequirement
{
    /// <summary>Returns when QEMU, root, ip and the TUN device are there; skips or fails the test otherwise.</summary>
    public static void EnsureAvailable()
    {
        QemuRequirement.EnsureAvailable();
        string? missing = !OperatingSystem.IsLinux() ? "network namespaces need Linux"
            : Environment.UserName != "root" && !IsRoot() ? "creating namespaces and TAP devices needs root"
            : !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip") ? "ip is not installed (apt-get install iproute2)"
            : !File.Exists("/dev/net/tun") ? "/dev/net/tun does not exist"
            : null;
        if (missing is null)
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"Kernel-peer tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"Kernel-peer tests skipped: {missing}.");
    }

    private static bool IsRoot()
    {
        // /proc/self/status: "Uid:\treal\teffective\t...".
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                string[] fields = line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 2 && fields[2] == "0";
            }
        }

        return false;
    }
}
