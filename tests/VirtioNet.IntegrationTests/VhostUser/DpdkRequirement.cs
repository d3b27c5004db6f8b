using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The one place that decides what a missing DPDK means for a test: skipped on a developer machine, failed on CI
/// (environment variable CI=true), where a missing peer would otherwise turn the suite silently green.
/// </summary>
public static class DpdkRequirement
{
    /// <summary>The backend the tests run (apt-get install dpdk-dev).</summary>
    public const string TestpmdBinary = "dpdk-testpmd";

    /// <summary>Returns when dpdk-testpmd (and setpriv, which it runs under) can be started; skips or fails the test otherwise.</summary>
    public static void EnsureAvailable()
    {
        string? missing = !OperatingSystem.IsLinux() ? "vhost-user needs Linux"
            : !IsOnPath(TestpmdBinary) ? $"{TestpmdBinary} is not on PATH (apt-get install dpdk-dev)"
            : !IsOnPath("setpriv") ? "setpriv is not on PATH (apt-get install util-linux)"
            : null;
        if (missing is null)
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"DPDK tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"DPDK tests skipped: {missing}.");
    }

    private static bool IsOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, name)));
}
