namespace VirtioNet.Tests.Discovery;

/// <summary>
/// The device tree blobs dumped from QEMU 7.2 (tests/VirtioNet.Tests/Data), found by walking up from the test
/// binaries to the project directory, so the test project needs no copy-to-output item.
/// </summary>
internal static class DeviceTreeTestData
{
    /// <summary><c>qemu-system-riscv64 -machine virt,dumpdtb=… -nodefaults</c>: 128 MiB of RAM, no devices.</summary>
    public const string RiscvVirt = "qemu-riscv64-virt.dtb";

    /// <summary>The same machine with 256 MiB of RAM and a virtio-net-device on user networking.</summary>
    public const string RiscvVirtWithNet = "qemu-riscv64-virt-net.dtb";

    public static byte[] Load(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            foreach (string candidate in new[]
            {
                Path.Combine(directory.FullName, "Data", name),
                Path.Combine(directory.FullName, "tests", "VirtioNet.Tests", "Data", name),
            })
            {
                if (File.Exists(candidate))
                {
                    return File.ReadAllBytes(candidate);
                }
            }
        }

        throw new FileNotFoundException($"Test data {name} not found above {AppContext.BaseDirectory}.", name);
    }
}
