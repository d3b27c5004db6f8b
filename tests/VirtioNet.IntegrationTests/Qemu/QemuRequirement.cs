using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Qemu;

/// <summary>
/// The one place that decides what a missing QEMU means for a test: skipped on a developer machine, failed on CI
/// (environment variable CI=true), where a missing peer would otherwise turn the whole suite silently green.
/// </summary>
public static class QemuRequirement
{
    /// <summary>The binary the QEMU tests run.</summary>
    public const string QemuBinary = "qemu-system-riscv64";

    /// <summary>Returns when QEMU (and setpriv, which it runs under) can be started; skips or fails the test otherwise.</summary>
    public static void EnsureAvailable() => EnsureAvailable(QemuMachineKind.RiscvVirt);

    /// <summary>As <see cref="EnsureAvailable()"/>, for the binary of <paramref name="machine"/> (x86_64 q35 needs qemu-system-x86_64).</summary>
    public static void EnsureAvailable(QemuMachineKind machine)
    {
        string binary = QemuMachineOptions.DefaultQemuPath(machine);
        string package = machine == QemuMachineKind.X86Q35 ? "qemu-system-x86" : "qemu-system-misc";
        string? missing = !IsOnPath(binary) ? $"{binary} is not on PATH (apt-get install {package})"
            : !IsOnPath("setpriv") ? "setpriv is not on PATH (apt-get install util-linux)"
            : !Directory.Exists("/dev/shm") ? "/dev/shm does not exist"
            : null;
        if (missing is null)
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"QEMU tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"QEMU tests skipped: {missing}.");
    }

    /// <summary>
    /// Where scripts/install-deps unpacks QEMU 10.0 (bookworm-backports), beside the system's 7.2: the device for the
    /// features 7.2's virtio-net does not offer (USO, IN_ORDER). Tests that drive it carry the trait Peer=Qemu10.
    /// </summary>
    public const string Qemu10Prefix = "/opt/virtionet/qemu-10.0";

    /// <summary>The QEMU 10.0 binary for <paramref name="machine"/>.</summary>
    public static string Qemu10Path(QemuMachineKind machine) =>
        Path.Combine(Qemu10Prefix, "usr/bin", QemuMachineOptions.DefaultQemuPath(machine));

    /// <summary>As <see cref="EnsureAvailable(QemuMachineKind)"/>, for QEMU 10.0; returns its path.</summary>
    public static string EnsureQemu10Available(QemuMachineKind machine = QemuMachineKind.RiscvVirt)
    {
        EnsureAvailable(machine);
        string path = Qemu10Path(machine);
        if (File.Exists(path))
        {
            return path;
        }

        string missing = $"{path} does not exist (run scripts/install-deps as root)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"QEMU 10.0 tests cannot run on CI: {missing}.");
        }

        Assert.Skip($"QEMU 10.0 tests skipped: {missing}.");
        return path;
    }

    private static bool IsOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, name)));
}
