namespace VirtioNet.Tests.Discovery;

/// <summary>
/// The device tree blobs dumped from QEMU 7.2 (tests/VirtioNet.Tests/Data, copied next to the test binaries).
/// </summary>
internal static class DeviceTreeTestData
{
    /// <summary><c>qemu-system-riscv64 -machine virt,dumpdtb=… -nodefaults</c>: 128 MiB of RAM, no devices.</summary>
    public const string RiscvVirt = "qemu-riscv64-virt.dtb";

    /// <summary>The same machine with 256 MiB of RAM and a virtio-net-device on user networking.</summary>
    public const string RiscvVirtWithNet = "qemu-riscv64-virt-net.dtb";

    public static byte[] Load(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Data", name));
}
