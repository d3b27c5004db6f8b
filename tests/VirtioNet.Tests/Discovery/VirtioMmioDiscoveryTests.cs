using VirtioNet.Discovery;
using Xunit;

namespace VirtioNet.Tests.Discovery;

public class VirtioMmioDiscoveryTests
{
    [Theory]
    [InlineData(DeviceTreeTestData.RiscvVirt)]
    [InlineData(DeviceTreeTestData.RiscvVirtWithNet)]
    public void QemuRiscvVirtHasEightSlotsOnPlicSourcesOneToEight(string dtb)
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(dtb));

        IReadOnlyList<VirtioMmioSlot> slots = VirtioMmioDiscovery.Find(tree);

        Assert.Equal(8, slots.Count);
        for (int k = 0; k < slots.Count; k++)
        {
            ulong expectedBase = 0x1000_1000UL + ((ulong)k * 0x1000);
            Assert.Equal(
                new VirtioMmioSlot($"/soc/virtio_mmio@{expectedBase:x}", expectedBase, 0x1000, (uint)k + 1, "/soc/plic@c000000", "sifive,plic-1.0.0"),
                slots[k]);
        }
    }

    [Fact]
    public void ThePlicOfQemuRiscvVirtIsFound()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));

        PlatformInterruptController plic = Assert.Single(PlatformInterruptController.Find(tree));

        Assert.Equal(new PlatformInterruptController("/soc/plic@c000000", 0xC00_0000, 0x60_0000, 0x60, 3, "sifive,plic-1.0.0"), plic);
        Assert.True(PlatformInterruptController.IsPlatformInterruptController(tree.FindNode("/soc/plic@c000000")!));
        Assert.False(PlatformInterruptController.IsPlatformInterruptController(tree.FindNode("/soc/clint@2000000")!));
    }

    [Fact]
    public void SlotsAreSortedByBaseAddressWhateverTheBlobOrder()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(FdtBuilder.VirtLike().Build());

        IReadOnlyList<VirtioMmioSlot> slots = VirtioMmioDiscovery.Find(tree);

        Assert.Equal([0x1000_1000UL, 0x1000_2000UL], slots.Select(s => s.BaseAddress));
        Assert.Equal([1u, 2u], slots.Select(s => s.Interrupt));
        Assert.Equal(["/soc/virtio_mmio@10001000", "/soc/virtio_mmio@10002000"], slots.Select(s => s.NodePath));
    }

    [Fact]
    public void ATreeWithoutVirtioNodesHasNoSlots()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(new FdtBuilder().BeginNode(string.Empty).BeginNode("soc").EndNode().EndNode().Build());

        Assert.Empty(VirtioMmioDiscovery.Find(tree));
        Assert.Empty(PlatformInterruptController.Find(tree));
    }

    [Fact]
    public void DisabledVirtioNodesAreLeftOut()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(Bus(b => b
            .BeginNode("virtio_mmio@10001000").String("status", "disabled").Cells("reg", 0x1000_1000, 0x1000).Cells("interrupts", 1).String("compatible", "virtio,mmio").EndNode()
            .BeginNode("virtio_mmio@10002000").String("status", "okay").Cells("reg", 0x1000_2000, 0x1000).Cells("interrupts", 2).String("compatible", "virtio,mmio").EndNode()));

        VirtioMmioSlot slot = Assert.Single(VirtioMmioDiscovery.Find(tree));

        Assert.Equal(0x1000_2000UL, slot.BaseAddress);
    }

    [Fact]
    public void SlotAddressesAreTranslatedThroughTheBusRanges()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .Cells("#address-cells", 2).Cells("#size-cells", 2)
                .BeginNode("plic").Cells("phandle", 1).Cells("#interrupt-cells", 1).Empty("interrupt-controller").EndNode()
                .BeginNode("bus").Cells("#address-cells", 1).Cells("#size-cells", 1).Cells("interrupt-parent", 1)
                    .Cells("ranges", 0x0, 0x1, 0x0, 0x10_0000)
                    .BeginNode("virtio@200").Cells("reg", 0x200, 0x200).Cells("interrupts", 7).String("compatible", "virtio,mmio").EndNode()
                .EndNode()
            .EndNode()
            .Build();

        VirtioMmioSlot slot = Assert.Single(VirtioMmioDiscovery.Find(FlattenedDeviceTree.Parse(blob)));

        Assert.Equal(0x1_0000_0200UL, slot.BaseAddress);
        Assert.Equal(0x200UL, slot.Length);
        Assert.Equal(7u, slot.Interrupt);
        Assert.Equal("/plic", slot.InterruptControllerPath);
        Assert.Equal(string.Empty, slot.InterruptControllerCompatible);
    }

    [Theory]
    [InlineData("no-reg", "has no reg")]
    [InlineData("empty-reg", "has no reg")]
    [InlineData("zero-size", "has a reg of size 0")]
    [InlineData("no-interrupts", "has no interrupts")]
    [InlineData("empty-interrupts", "has no interrupts")]
    [InlineData("source-zero", "uses interrupt 0, outside the sources 1-96")]
    [InlineData("source-past-ndev", "uses interrupt 97, outside the sources 1-96")]
    public void AVirtioNodeThatCannotBeUsedIsMalformedAndNamed(string which, string expected)
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(Bus(b =>
        {
            b.BeginNode("virtio_mmio@10001000").String("compatible", "virtio,mmio");
            if (which != "no-reg")
            {
                b.Cells("reg", which == "empty-reg" ? [] : [0x1000_1000, which == "zero-size" ? 0u : 0x1000u]);
            }

            if (which != "no-interrupts")
            {
                b.Cells("interrupts", which switch { "empty-interrupts" => [], "source-zero" => [0u], "source-past-ndev" => [0x61u], _ => [1u] });
            }

            return b.EndNode();
        }));

        string message = DeviceTreeAssert.Malformed(() => VirtioMmioDiscovery.Find(tree)).Message;

        Assert.Contains("/soc/virtio_mmio@10001000", message, StringComparison.Ordinal);
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Fact]
    public void OverlappingVirtioNodesAreMalformed()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(Bus(b => b
            .BeginNode("virtio_mmio@10001000").Cells("reg", 0x1000_1000, 0x1000).Cells("interrupts", 1).String("compatible", "virtio,mmio").EndNode()
            .BeginNode("virtio_mmio@10001800").Cells("reg", 0x1000_1800, 0x1000).Cells("interrupts", 2).String("compatible", "virtio,mmio").EndNode()));

        Assert.Contains("overlap at 0x10001800", DeviceTreeAssert.Malformed(() => VirtioMmioDiscovery.Find(tree)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AVirtioNodeOnABusWithoutRangesIsUnreachable()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("plic").Cells("phandle", 1).Cells("#interrupt-cells", 1).EndNode()
                .BeginNode("i2c").Cells("#address-cells", 1).Cells("#size-cells", 1).Cells("interrupt-parent", 1)
                    .BeginNode("virtio@50").Cells("reg", 0x50, 0x10).Cells("interrupts", 3).String("compatible", "virtio,mmio").EndNode()
                .EndNode()
            .EndNode()
            .Build();

        Assert.Contains("not reachable from the CPU", DeviceTreeAssert.Malformed(() => VirtioMmioDiscovery.Find(FlattenedDeviceTree.Parse(blob))).Message, StringComparison.Ordinal);
    }

    /// <summary>A root with a PLIC (phandle 1, 96 sources) and a one-cell simple-bus "/soc" whose children <paramref name="children"/> adds.</summary>
    private static byte[] Bus(Func<FdtBuilder, FdtBuilder> children)
    {
        FdtBuilder builder = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("plic@c000000").Cells("phandle", 1).Cells("riscv,ndev", 96).Cells("#interrupt-cells", 1)
                    .Empty("interrupt-controller").StringList("compatible", "sifive,plic-1.0.0", "riscv,plic0").Cells("reg", 0, 0xC00_0000, 0, 0x60_0000)
                .EndNode()
                .BeginNode("soc").Cells("#address-cells", 1).Cells("#size-cells", 1).Empty("ranges").Cells("interrupt-parent", 1);
        return children(builder).EndNode().EndNode().Build();
    }
}
