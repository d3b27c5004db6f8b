using VirtioNet.Discovery;
using Xunit;

namespace VirtioNet.Tests.Discovery;

public class DeviceTreeNodeTests
{
    private static FlattenedDeviceTree QemuVirt() =>
        FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));

    private static DeviceTreeNode SingleNode(Func<FdtBuilder, FdtBuilder> properties)
    {
        FdtBuilder builder = new FdtBuilder().BeginNode(string.Empty).BeginNode("n");
        return FlattenedDeviceTree.Parse(properties(builder).EndNode().EndNode().Build()).FindNode("/n")!;
    }

    [Fact]
    public void PropertyHelpersDecodeBigEndianCellsAndNulTerminatedStrings()
    {
        DeviceTreeNode node = SingleNode(b => b
            .String("s", "hello")
            .StringList("list", "sifive,plic-1.0.0", string.Empty, "riscv,plic0")
            .Cells("one", 0x0102_0304)
            .Cells("two", 0x1, 0x8000_0000)
            .Cells("many", 1, 2, 3)
            .Empty("flag"));

        Assert.Equal("hello", node.Properties["s"].AsString());
        Assert.Equal(["sifive,plic-1.0.0", string.Empty, "riscv,plic0"], node.Properties["list"].AsStringList());
        Assert.Equal(0x0102_0304u, node.Properties["one"].AsUInt32());
        Assert.Equal(0x1_8000_0000UL, node.Properties["two"].AsUInt64());
        Assert.Equal([1u, 2u, 3u], node.Properties["many"].AsUInt32Array());
        Assert.True(node.Properties["flag"].IsEmpty);
        Assert.Empty(node.Properties["flag"].AsUInt32Array());
        Assert.Equal([0x01, 0x02, 0x03, 0x04], node.Properties["one"].Value.ToArray());
    }

    [Fact]
    public void PropertyHelpersRefuseValuesOfTheWrongShape()
    {
        DeviceTreeNode node = SingleNode(b => b
            .Property("unterminated", "abc"u8.ToArray())
            .Property("two-strings", "a\0b\0"u8.ToArray())
            .Property("six", [1, 2, 3, 4, 5, 6])
            .Cells("one", 1)
            .Empty("flag"));

        Assert.Contains("'unterminated' of /n", DeviceTreeAssert.Malformed(() => node.Properties["unterminated"].AsString()).Message, StringComparison.Ordinal);
        DeviceTreeAssert.Malformed(() => node.Properties["unterminated"].AsStringList());
        DeviceTreeAssert.Malformed(() => node.Properties["two-strings"].AsString());
        DeviceTreeAssert.Malformed(() => node.Properties["six"].AsUInt32());
        DeviceTreeAssert.Malformed(() => node.Properties["six"].AsUInt32Array());
        DeviceTreeAssert.Malformed(() => node.Properties["one"].AsUInt64());
        DeviceTreeAssert.Malformed(() => node.Properties["flag"].AsString());
        DeviceTreeAssert.Malformed(() => node.Properties["flag"].AsUInt32());
    }

    [Theory]
    [InlineData(DeviceTreeTestData.RiscvVirt, 0x0800_0000UL)]
    [InlineData(DeviceTreeTestData.RiscvVirtWithNet, 0x1000_0000UL)]
    public void RegOfTheQemuMemoryNodeGivesTheRamSize(string dtb, ulong ramSize)
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(dtb));

        Assert.True(tree.FindNode("/memory@80000000")!.TryGetReg(out (ulong Address, ulong Size)[] regions));

        Assert.Equal([(0x8000_0000UL, ramSize)], regions);
    }

    [Fact]
    public void RegWithSeveralEntriesAndRegWithNoSizeCellsDecode()
    {
        FlattenedDeviceTree tree = QemuVirt();

        Assert.True(tree.FindNode("/flash@20000000")!.TryGetReg(out (ulong Address, ulong Size)[] flash));
        Assert.True(tree.FindNode("/cpus/cpu@0")!.TryGetReg(out (ulong Address, ulong Size)[] cpu));

        Assert.Equal([(0x2000_0000UL, 0x200_0000UL), (0x2200_0000UL, 0x200_0000UL)], flash);
        Assert.Equal([(0UL, 0UL)], cpu);
        Assert.Equal(1u, tree.FindNode("/cpus")!.AddressCells);
        Assert.Equal(0u, tree.FindNode("/cpus")!.SizeCells);
    }

    [Fact]
    public void CellCountsDefaultToTwoAddressCellsAndOneSizeCell()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("bus")
                    .BeginNode("dev@1").Cells("reg", 0x1, 0x2000_0000, 0x4000).EndNode()
                .EndNode()
            .EndNode()
            .Build();
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.True(tree.FindNode("/bus/dev@1")!.TryGetReg(out (ulong Address, ulong Size)[] regions));

        Assert.Equal(DeviceTreeNode.DefaultAddressCells, tree.FindNode("/bus")!.AddressCells);
        Assert.Equal(DeviceTreeNode.DefaultSizeCells, tree.FindNode("/bus")!.SizeCells);
        Assert.Equal([(0x1_2000_0000UL, 0x4000UL)], regions);
    }

    [Fact]
    public void NodesWithoutRegSayNoAndMalformedRegIsRefused()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("plain").EndNode()
                .BeginNode("ragged").Cells("reg", 0, 0x1000, 0, 1).EndNode() // four cells against the default 2 + 1
                .BeginNode("pci").Cells("#address-cells", 3).Cells("#size-cells", 2)
                    .BeginNode("dev@0").Cells("reg", 0, 0, 0, 0, 0).EndNode()
                .EndNode()
                .BeginNode("wide").Cells("#address-cells", 1).Cells("#size-cells", 3)
                    .BeginNode("dev@0").Cells("reg", 0, 0, 0, 0).EndNode()
                .EndNode()
                .BeginNode("zero").Cells("#address-cells", 0).Cells("#size-cells", 1)
                    .BeginNode("dev@0").Cells("reg", 0).EndNode()
                .EndNode()
                .BeginNode("badcells").Property("#address-cells", [0, 0, 2])
                    .BeginNode("dev@0").Cells("reg", 0, 0, 0).EndNode()
                .EndNode()
            .EndNode()
            .Build();
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.False(tree.FindNode("/plain")!.TryGetReg(out (ulong Address, ulong Size)[] none));
        Assert.Empty(none);
        Assert.Contains("not a whole number", DeviceTreeAssert.Malformed(() => tree.FindNode("/ragged")!.TryGetReg(out _)).Message, StringComparison.Ordinal);
        Assert.Contains("#address-cells = 3", DeviceTreeAssert.Malformed(() => tree.FindNode("/pci/dev@0")!.TryGetReg(out _)).Message, StringComparison.Ordinal);
        DeviceTreeAssert.Malformed(() => tree.FindNode("/wide/dev@0")!.TryGetReg(out _));
        DeviceTreeAssert.Malformed(() => tree.FindNode("/zero/dev@0")!.TryGetReg(out _));
        DeviceTreeAssert.Malformed(() => tree.FindNode("/badcells/dev@0")!.TryGetReg(out _));
    }

    [Fact]
    public void AddressesTranslateThroughEachBusRanges()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .Cells("#address-cells", 2).Cells("#size-cells", 2)
                .BeginNode("outer")
                    .Cells("#address-cells", 1).Cells("#size-cells", 1)
                    .Cells("ranges", 0x0, 0x4, 0x0, 0x1000_0000) // child 0..0x10000000 -> CPU 0x4_0000_0000
                    .BeginNode("inner")
                        .Cells("#address-cells", 1).Cells("#size-cells", 1)
                        .Cells("ranges", 0x100, 0x2000, 0x100, 0x9000, 0x8000, 0x10)
                    .EndNode()
                    .BeginNode("closed").EndNode()
                .EndNode()
            .EndNode()
            .Build();
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);
        DeviceTreeNode inner = tree.FindNode("/outer/inner")!;

        Assert.True(inner.TryTranslateAddress(0x180, out ulong first));
        Assert.True(inner.TryTranslateAddress(0x9004, out ulong second));
        Assert.False(inner.TryTranslateAddress(0x200, out _));
        Assert.False(tree.FindNode("/outer/closed")!.TryTranslateAddress(0, out _));
        Assert.True(tree.Root.TryTranslateAddress(0x1234, out ulong identity));

        Assert.Equal(0x4_0000_2080UL, first);
        Assert.Equal(0x4_0000_8004UL, second);
        Assert.Equal(0x1234UL, identity);
    }

    [Fact]
    public void InterruptParentFollowsThePhandleToThePlic()
    {
        FlattenedDeviceTree tree = QemuVirt();

        DeviceTreeNode? parent = tree.FindNode("/soc/virtio_mmio@10003000")!.GetInterruptParent();

        Assert.Equal("/soc/plic@c000000", parent?.Path);
    }

    [Fact]
    public void InterruptParentIsInheritedFromAnAncestor()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .Cells("interrupt-parent", 1)
                .BeginNode("intc").Cells("phandle", 1).Cells("#interrupt-cells", 2).Empty("interrupt-controller").EndNode()
                .BeginNode("bus")
                    .BeginNode("dev").Cells("interrupts", 5, 4, 6, 1).EndNode()
                .EndNode()
                .BeginNode("nested-intc").Cells("#interrupt-cells", 1)
                    .BeginNode("dev").Cells("interrupts", 9).EndNode()
                .EndNode()
            .EndNode()
            .Build();
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);
        DeviceTreeNode device = tree.FindNode("/bus/dev")!;

        Assert.True(device.TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> interrupts));
        Assert.True(tree.FindNode("/nested-intc/dev")!.TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> nested));

        Assert.Equal("/intc", device.GetInterruptParent()?.Path);
        Assert.Equal([[5u, 4u], [6u, 1u]], interrupts.Select(i => i.Specifier.ToArray()));
        Assert.All(interrupts, i => Assert.Equal("/intc", i.Controller.Path));
        Assert.Equal("/nested-intc", Assert.Single(nested).Controller.Path);
        Assert.Equal("/intc", tree.Root.GetInterruptParent()?.Path);
    }

    [Fact]
    public void AVirtioNodeOfTheQemuTreeHasOnePlicInterrupt()
    {
        FlattenedDeviceTree tree = QemuVirt();

        Assert.True(tree.FindNode("/soc/virtio_mmio@10005000")!.TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> interrupts));

        DeviceTreeInterrupt interrupt = Assert.Single(interrupts);
        Assert.Equal("/soc/plic@c000000", interrupt.Controller.Path);
        Assert.Equal([5u], interrupt.Specifier);
    }

    [Fact]
    public void InterruptsExtendedNamesAControllerPerEntry()
    {
        FlattenedDeviceTree tree = QemuVirt();

        // The PLIC's own outputs: <&cpu0_intc 11 &cpu0_intc 9> (machine and supervisor external interrupts).
        Assert.True(tree.FindNode("/soc/plic@c000000")!.TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> interrupts));

        Assert.Equal([[11u], [9u]], interrupts.Select(i => i.Specifier.ToArray()));
        Assert.All(interrupts, i => Assert.Equal("/cpus/cpu@0/interrupt-controller", i.Controller.Path));
        Assert.False(tree.FindNode("/memory@80000000")!.TryGetInterrupts(out IReadOnlyList<DeviceTreeInterrupt> none));
        Assert.Empty(none);
    }

    [Fact]
    public void BrokenInterruptDescriptionsAreMalformed()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("intc").Cells("phandle", 1).Cells("#interrupt-cells", 2).EndNode()
                .BeginNode("zero").Cells("phandle", 2).Cells("#interrupt-cells", 0).EndNode()
                .BeginNode("loop-a").Cells("phandle", 3).Cells("interrupt-parent", 4).EndNode()
                .BeginNode("loop-b").Cells("phandle", 4).Cells("interrupt-parent", 3).EndNode()
                .BeginNode("ragged").Cells("interrupt-parent", 1).Cells("interrupts", 1, 2, 3).EndNode()
                .BeginNode("dangling").Cells("interrupt-parent", 99).Cells("interrupts", 1).EndNode()
                .BeginNode("orphan").Cells("interrupts", 1).EndNode()
                .BeginNode("zero-cells").Cells("interrupt-parent", 2).Cells("interrupts", 1).EndNode()
                .BeginNode("looping").Cells("interrupt-parent", 3).Cells("interrupts", 1).EndNode()
                .BeginNode("short-extended").Cells("interrupts-extended", 1, 5).EndNode()
                .BeginNode("dangling-extended").Cells("interrupts-extended", 42, 5).EndNode()
            .EndNode()
            .Build();
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        void Fails(string path, string expected) =>
            Assert.Contains(expected, DeviceTreeAssert.Malformed(() => tree.FindNode(path)!.TryGetInterrupts(out _)).Message, StringComparison.Ordinal);

        Fails("/ragged", "not a whole number of 2-cell specifiers");
        Fails("/dangling", "phandle 0x63");
        Fails("/orphan", "no interrupt parent");
        Fails("/zero-cells", "#interrupt-cells = 0");
        Fails("/looping", "loops");
        Fails("/short-extended", "ends inside a 2-cell specifier");
        Fails("/dangling-extended", "phandle 0x2a");
    }
}
