using VirtioNet.Discovery;
using Xunit;

namespace VirtioNet.Tests.Discovery;

public class FlattenedDeviceTreeTests
{
    [Fact]
    public void QemuRiscvVirtTreeParsesWithItsHeaderFields()
    {
        byte[] blob = DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt);

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.Equal(17u, tree.Version);
        Assert.Equal(16u, tree.LastCompatibleVersion);
        Assert.Equal((uint)blob.Length, tree.TotalSize);
        Assert.Empty(tree.MemoryReservations);
        Assert.Equal("/", tree.Root.Path);
        Assert.Equal(string.Empty, tree.Root.Name);
        Assert.Null(tree.Root.Parent);
        Assert.Same(tree.Root, tree.Nodes[0]);
        Assert.Equal(["riscv-virtio"], tree.Root.Compatible);
        Assert.True(tree.Root.TryGetProperty("model", out DeviceTreeProperty? model));
        Assert.Equal("riscv-virtio,qemu", model.AsString());
        Assert.Equal("/soc/serial@10000000", tree.FindNode("/chosen")!.Properties["stdout-path"].AsString());
    }

    [Fact]
    public void NodesKnowTheirNameUnitAddressPathParentAndChildren()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));

        DeviceTreeNode node = tree.FindNode("/soc/virtio_mmio@10008000")!;

        Assert.Equal("virtio_mmio@10008000", node.Name);
        Assert.Equal("virtio_mmio", node.UnitName);
        Assert.Equal("10008000", node.UnitAddress);
        Assert.Equal("/soc/virtio_mmio@10008000", node.Path);
        Assert.Equal(2, node.Depth);
        Assert.Equal("/soc", node.Parent!.Path);
        Assert.Contains(node, node.Parent.Children);
        Assert.Empty(node.Children);
        Assert.Equal(["interrupts", "interrupt-parent", "reg", "compatible"], node.Properties.Keys);
        Assert.Null(tree.FindNode("/soc")!.UnitAddress);
    }

    [Fact]
    public void FindNodeOmitsAUnitAddressOnlyWhenTheNameIsUnambiguous()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));

        Assert.Equal("/soc/plic@c000000", tree.FindNode("/soc/plic")?.Path);
        Assert.Null(tree.FindNode("/soc/virtio_mmio"));
        Assert.Null(tree.FindNode("/soc/virtio_mmio@10009000"));
        Assert.Null(tree.FindNode("/soc//plic"));
        Assert.Same(tree.Root, tree.FindNode("/"));
        DeviceTreeNode soc = tree.FindNode("/soc")!;
        Assert.Same(tree.FindNode("/soc/clint@2000000"), soc.FindNode("clint@2000000"));
        Assert.Equal("/cpus/cpu@0/interrupt-controller", soc.FindNode("/cpus/cpu@0/interrupt-controller")?.Path);
    }

    [Fact]
    public void PathsStartingWithAnAliasResolveThroughTheAliasesNode()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("aliases").String("serial0", "/soc/serial@10000000").String("broken", "soc").EndNode()
                .BeginNode("soc").BeginNode("serial@10000000").BeginNode("port").EndNode().EndNode().EndNode()
            .EndNode()
            .Build();
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.Equal("/soc/serial@10000000", tree.FindNode("serial0")?.Path);
        Assert.Equal("/soc/serial@10000000/port", tree.FindNode("serial0/port")?.Path);
        Assert.Null(tree.FindNode("serial1"));
        DeviceTreeAssert.Malformed(() => tree.FindNode("broken"));
    }

    [Fact]
    public void PhandlesLeadToTheirNodes()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));

        Assert.True(tree.TryFindByPhandle(3, out DeviceTreeNode? plic));
        Assert.Equal("/soc/plic@c000000", plic.Path);
        Assert.Equal(3u, plic.Phandle);
        Assert.True(tree.TryFindByPhandle(2, out DeviceTreeNode? intc));
        Assert.Equal("/cpus/cpu@0/interrupt-controller", intc.Path);
        Assert.False(tree.TryFindByPhandle(0x1234, out _));
        Assert.Null(tree.FindNode("/soc/virtio_mmio@10001000")!.Phandle);
    }

    [Fact]
    public void TheOlderLinuxPhandlePropertyCountsAsAPhandle()
    {
        byte[] blob = new FdtBuilder()
            .BeginNode(string.Empty)
                .BeginNode("a").Cells("linux,phandle", 7).EndNode()
                .BeginNode("b").Cells("linux,phandle", 8).Cells("phandle", 8).EndNode()
            .EndNode()
            .Build();

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.True(tree.TryFindByPhandle(7, out DeviceTreeNode? a));
        Assert.Equal("/a", a.Path);
        Assert.True(tree.TryFindByPhandle(8, out DeviceTreeNode? b));
        Assert.Equal("/b", b.Path);
    }

    [Fact]
    public void FindCompatibleListsMatchingNodesInBlobOrder()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));

        IReadOnlyList<DeviceTreeNode> virtio = tree.FindCompatible("virtio,mmio");
        IReadOnlyList<DeviceTreeNode> plic = tree.FindCompatible("riscv,plic0");

        // QEMU adds the slots from the highest down, so blob order is descending.
        Assert.Equal(
            Enumerable.Range(1, 8).Reverse().Select(i => $"/soc/virtio_mmio@1000{i}000"),
            virtio.Select(n => n.Path));
        Assert.Equal(["/soc/plic@c000000"], plic.Select(n => n.Path));
        Assert.Empty(tree.FindCompatible("virtio"));
    }

    [Fact]
    public void ABlobLongerThanTotalSizeParsesOnlyTheTree()
    {
        byte[] dtb = DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt);
        byte[] window = new byte[dtb.Length + 65536];
        dtb.CopyTo(window, 0);
        window.AsSpan(dtb.Length).Fill(0xAB);

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(window);

        Assert.Equal((uint)dtb.Length, tree.TotalSize);
        Assert.Equal(FlattenedDeviceTree.Parse(dtb).Nodes.Select(n => n.Path), tree.Nodes.Select(n => n.Path));
    }

    [Fact]
    public void TheTreeKeepsItsOwnCopyOfTheBlob()
    {
        byte[] blob = DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt);
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Array.Clear(blob);

        Assert.Equal("riscv-virtio,qemu", tree.Root.Properties["model"].AsString());
    }

    [Fact]
    public void MemoryReservationsAreReadUpToTheEmptyEntry()
    {
        byte[] blob = new FdtBuilder()
            .Reserve(0x8000_0000, 0x20_0000)
            .Reserve(0x8FE0_0000, 0x1000)
            .BeginNode(string.Empty).EndNode()
            .Build();

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.Equal(
            [new DeviceTreeMemoryReservation(0x8000_0000, 0x20_0000), new DeviceTreeMemoryReservation(0x8FE0_0000, 0x1000)],
            tree.MemoryReservations);
    }

    [Fact]
    public void NopTokensAreSkippedWhereverTheyAppear()
    {
        byte[] blob = new FdtBuilder()
            .Nop()
            .BeginNode(string.Empty)
                .Nop()
                .Cells("a", 1)
                .Nop()
                .BeginNode("child").Nop().EndNode()
                .Nop()
            .EndNode()
            .Nop()
            .Build();

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.Equal(["/", "/child"], tree.Nodes.Select(n => n.Path));
        Assert.Equal(1u, tree.Root.Properties["a"].AsUInt32());
    }

    [Fact]
    public void AVersion16BlobIsReadWithoutTheStructureSizeField()
    {
        byte[] blob = FdtBuilder.VirtLike().Build();
        FdtBuilder.SetField(blob, FdtBuilder.VersionOffset, 16);
        FdtBuilder.SetField(blob, FdtBuilder.SizeDtStructOffset, 0xDEAD_BEEF); // not a field in version 16

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(blob);

        Assert.Equal(16u, tree.Version);
        Assert.Equal(2, tree.FindCompatible("virtio,mmio").Count);
    }

    [Fact]
    public void ATreeAtTheNestingBoundParses()
    {
        var builder = new FdtBuilder().BeginNode(string.Empty);
        for (int i = 0; i < FlattenedDeviceTree.MaxDepth; i++)
        {
            builder.BeginNode("n");
        }

        for (int i = 0; i <= FlattenedDeviceTree.MaxDepth; i++)
        {
            builder.EndNode();
        }

        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(builder.Build());

        Assert.Equal(FlattenedDeviceTree.MaxDepth, tree.Nodes[^1].Depth);
        Assert.Equal("/" + string.Join('/', Enumerable.Repeat("n", FlattenedDeviceTree.MaxDepth)), tree.Nodes[^1].Path);
    }
}
