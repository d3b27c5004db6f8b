using VirtioNet.Core;
using VirtioNet.IntegrationTests.Matrix;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using Xunit;

namespace VirtioNet.IntegrationTests.Platform;

/// <summary>
/// VIRTIO_F_ACCESS_PLATFORM (virtio v1.2 §6.1) against QEMU's <c>iommu_platform=on</c>: QEMU then offers the bit and
/// refuses FEATURES_OK from a driver that does not accept it (the spec lets a device "fail to operate further"). Without
/// a vIOMMU the bus addresses are guest-physical, which is what this platform's DMA allocator hands out, so after
/// accepting it the driver runs unchanged: the transport matrix's check (DHCP, ping, then thousands of frames each way
/// compared byte for byte) on every modern transport, split (INTx or the mmio line, event_idx on) and packed (per-queue
/// MSI-X, event_idx off).
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class AccessPlatformTests
{
    [Theory]
    [InlineData("riscv64-virt", "mmio", false)]
    [InlineData("riscv64-virt", "pci", false)]
    [InlineData("riscv64-virt", "pci", true)]
    [InlineData("x86_64-q35", "pci", false)]
    [InlineData("x86_64-q35", "pci", true)]
    public void WithIommuPlatformOnTheDriverAcceptsAccessPlatformAndTrafficFlows(string machine, string transport, bool packed)
    {
        var row = new TransportMatrixTests.MatrixRow(machine, transport, packed, OperationMode.Interrupt, EventIdx: !packed, ExtraProperties: "iommu_platform=on");
        QemuRequirement.EnsureAvailable(row.Kind);
        TransportMatrixTests.PingAndExchangeFrames(row, net =>
        {
            Assert.NotEqual(0UL, net.OfferedFeatures & VirtioFeatures.AccessPlatform);
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.AccessPlatform);
        });
    }
}
