using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// What a missing Open vSwitch with DPDK means for a test: skipped on a developer machine, failed on CI (environment
/// variable CI=true), as <see cref="DpdkRequirement"/> does for testpmd. The paths are those of Debian 12's
/// openvswitch-switch-dpdk (3.1.0), which scripts/install-deps installs.
/// </summary>
public static class OvsRequirement
{
    /// <summary>The DPDK-enabled switch daemon, called directly so that the ovs-vswitchd alternative does not matter.</summary>
    public const string VswitchdBinary = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";

    /// <summary>The database server each test instance runs privately.</summary>
    public const string OvsdbServerBinary = "/usr/sbin/ovsdb-server";

    /// <summary>Creates the private database from <see cref="Schema"/>.</summary>
    public const string OvsdbToolBinary = "/usr/bin/ovsdb-tool";

    /// <summary>Configures bridges, ports and other_config through the private database.</summary>
    public const string VsctlBinary = "/usr/bin/ovs-vsctl";

    /// <summary>Adds OpenFlow rules and reads port statistics through the bridge's management socket.</summary>
    public const string OfctlBinary = "/usr/bin/ovs-ofctl";

    /// <summary>The Open_vSwitch database schema shipped by openvswitch-common.</summary>
    public const string Schema = "/usr/share/openvswitch/vswitch.ovsschema";

    /// <summary>Returns when a private OVS-DPDK can be started; skips or fails the test otherwise.</summary>
    public static void EnsureAvailable()
    {
        string[] files = [VswitchdBinary, OvsdbServerBinary, OvsdbToolBinary, VsctlBinary, OfctlBinary, Schema];
        string? missing = !OperatingSystem.IsLinux() ? "OVS-DPDK needs Linux"
            : files.FirstOrDefault(f => !File.Exists(f)) is { } file ? $"{file} is missing (apt-get install openvswitch-switch-dpdk)"
            : !IsOnPath("setpriv") ? "setpriv is not on PATH (apt-get install util-linux)"
            : !IsOnPath("unshare") ? "unshare is not on PATH (apt-get install util-linux)"
            : null;
        if (missing is null)
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"OVS-DPDK tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"OVS-DPDK tests skipped: {missing}.");
    }

    private static bool IsOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, name)));
}
