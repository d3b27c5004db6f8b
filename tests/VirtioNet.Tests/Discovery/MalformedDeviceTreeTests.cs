using VirtioNet.Discovery;
using Xunit;

namespace VirtioNet.Tests.Discovery;

public class MalformedDeviceTreeTests
{
    private static byte[] QemuVirt() => DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt);

    [Fact]
    public void EveryTruncationOfTheQemuTreeIsMalformed()
    {
        byte[] blob = QemuVirt();

        for (int length = 0; length < blob.Length; length++)
        {
            DeviceTreeAssert.Malformed(() => FlattenedDeviceTree.Parse(blob.AsSpan(0, length)));
        }
    }

    [Fact]
    public void EveryTruncationWithAHeaderThatAgreesWithItIsMalformed()
    {
        // A truncated blob whose header was rewritten to fit: the parser gets past the header checks and must find
        // the damage inside the blocks (an unterminated name, a name offset past the strings, a missing FDT_END).
        byte[] original = QemuVirt();
        uint offStruct = FdtBuilder.GetField(original, FdtBuilder.OffDtStructOffset);
        uint sizeStruct = FdtBuilder.GetField(original, FdtBuilder.SizeDtStructOffset);
        uint offStrings = FdtBuilder.GetField(original, FdtBuilder.OffDtStringsOffset);
        uint sizeStrings = FdtBuilder.GetField(original, FdtBuilder.SizeDtStringsOffset);
        Assert.True(offStruct + sizeStruct <= offStrings, "the QEMU blob has its strings after its structure");

        for (uint length = offStruct; length < original.Length; length++)
        {
            byte[] blob = original[..(int)length];
            FdtBuilder.SetField(blob, FdtBuilder.TotalSizeOffset, length);
            FdtBuilder.SetField(blob, FdtBuilder.SizeDtStructOffset, Math.Min(sizeStruct, length - offStruct));
            FdtBuilder.SetField(blob, FdtBuilder.OffDtStringsOffset, Math.Min(offStrings, length));
            FdtBuilder.SetField(blob, FdtBuilder.SizeDtStringsOffset, length > offStrings ? Math.Min(sizeStrings, length - offStrings) : 0);

            DeviceTreeAssert.Malformed(() => FlattenedDeviceTree.Parse(blob));
        }
    }

    [Fact]
    public void BadMagicIsRefused()
    {
        byte[] blob = QemuVirt();
        blob[3] ^= 0x01;

        DeviceTreeAssert.ParseFails(blob, "bad magic 0xd00dfeec at offset 0x0");
    }

    [Theory]
    [InlineData(15u, 15u, "older than 16")]
    [InlineData(1u, 1u, "older than 16")]
    [InlineData(18u, 18u, "newer than 17")]
    [InlineData(16u, 17u, "newer than the version 16")]
    public void UnsupportedVersionsAreRefused(uint version, uint lastCompatible, string expected)
    {
        byte[] blob = QemuVirt();
        FdtBuilder.SetField(blob, FdtBuilder.VersionOffset, version);
        FdtBuilder.SetField(blob, FdtBuilder.LastCompVersionOffset, lastCompatible);

        DeviceTreeAssert.ParseFails(blob, expected);
    }

    [Fact]
    public void AFutureVersionCompatibleWith17IsRead()
    {
        byte[] blob = QemuVirt();
        FdtBuilder.SetField(blob, FdtBuilder.VersionOffset, 20);

        Assert.Equal(20u, FlattenedDeviceTree.Parse(blob).Version);
    }

    [Theory]
    [InlineData(FdtBuilder.TotalSizeOffset, 0x27u, "smaller than the 40-byte header")]
    [InlineData(FdtBuilder.TotalSizeOffset, 0x107Fu, "exceeds the 0x107e bytes available")]
    [InlineData(FdtBuilder.OffDtStructOffset, 0x107Eu, "structure block offset 0x107e")]
    [InlineData(FdtBuilder.OffDtStructOffset, 0x10u, "structure block offset 0x10")]
    [InlineData(FdtBuilder.OffDtStructOffset, 0x1000u, "structure block at 0x1000 with size 0xec0")]
    [InlineData(FdtBuilder.SizeDtStructOffset, 0xFFFF_FFFFu, "ends past totalsize")]
    [InlineData(FdtBuilder.OffDtStringsOffset, 0xFFFF_FF00u, "strings block offset 0xffffff00")]
    [InlineData(FdtBuilder.SizeDtStringsOffset, 0x187u, "strings block at 0xef8 with size 0x187")]
    [InlineData(FdtBuilder.OffMemRsvmapOffset, 0x107Eu, "memory reservation block offset 0x107e")]
    [InlineData(FdtBuilder.OffMemRsvmapOffset, 0x2Cu, "not 8-byte aligned")]
    public void HeaderOffsetsAndSizesOutsideTheBlobAreRefused(int field, uint value, string expected)
    {
        byte[] blob = QemuVirt();
        FdtBuilder.SetField(blob, field, value);

        DeviceTreeAssert.ParseFails(blob, expected);
    }

    [Fact]
    public void AnUnalignedStructureBlockIsRefused()
    {
        byte[] blob = QemuVirt();
        FdtBuilder.SetField(blob, FdtBuilder.OffDtStructOffset, 0x3A);
        FdtBuilder.SetField(blob, FdtBuilder.SizeDtStructOffset, 0x10);

        DeviceTreeAssert.ParseFails(blob, "not 4-byte aligned");
    }

    [Fact]
    public void AnUnterminatedNodeNameIsRefused()
    {
        byte[] blob = new FdtBuilder().Word(FdtBuilder.BeginNodeToken).Word(0x6162_6364).Build(appendEnd: false);

        DeviceTreeAssert.ParseFails(blob, "node name at offset 0x3c is not terminated");
    }

    [Fact]
    public void AnUnterminatedPropertyNameIsRefused()
    {
        var builder = new FdtBuilder();
        uint name = builder.RawString("reg"u8.ToArray());
        byte[] blob = builder.BeginNode(string.Empty).PropertyAt(name, [0, 0, 0, 1]).EndNode().Build();

        DeviceTreeAssert.ParseFails(blob, "not terminated within the strings block");
    }

    [Fact]
    public void APropertyNameOffsetOutsideTheStringsBlockIsRefused()
    {
        var builder = new FdtBuilder().BeginNode(string.Empty).Cells("a", 1);
        byte[] blob = builder.PropertyAt(2, [0, 0, 0, 1]).EndNode().Build();

        DeviceTreeAssert.ParseFails(blob, "name offset 0x2, outside the 0x2-byte strings block");
    }

    [Fact]
    public void APropertyValueRunningPastTheStructureBlockIsRefused()
    {
        byte[] blob = new FdtBuilder().BeginNode(string.Empty)
            .Word(FdtBuilder.PropToken).Word(0x7FFF_FFFF).Word(0)
            .EndNode().Build();

        DeviceTreeAssert.ParseFails(blob, "runs past the end of the structure block");
    }

    [Fact]
    public void AMissingEndNodeIsUnbalanced()
    {
        byte[] blob = new FdtBuilder().BeginNode(string.Empty).BeginNode("a").EndNode().Build();

        DeviceTreeAssert.ParseFails(blob, "while / (depth 0) is still open");
    }

    [Fact]
    public void AnExtraEndNodeIsUnbalanced()
    {
        byte[] blob = new FdtBuilder().EndNode().BeginNode(string.Empty).EndNode().Build();

        DeviceTreeAssert.ParseFails(blob, "closes no open node");
    }

    [Fact]
    public void ASecondRootIsRefused()
    {
        byte[] blob = new FdtBuilder().BeginNode(string.Empty).EndNode().BeginNode(string.Empty).EndNode().Build();

        DeviceTreeAssert.ParseFails(blob, "a second root node");
    }

    [Fact]
    public void AnEmptyStructureBlockHasNoRoot()
    {
        DeviceTreeAssert.ParseFails(new FdtBuilder().Build(), "the tree has no root");
        DeviceTreeAssert.ParseFails(new FdtBuilder().Nop().Build(appendEnd: false), "without FDT_END");
    }

    [Fact]
    public void NestingDeeperThanTheBoundIsRefused()
    {
        var builder = new FdtBuilder().BeginNode(string.Empty);
        for (int i = 0; i <= FlattenedDeviceTree.MaxDepth; i++)
        {
            builder.BeginNode("n");
        }

        DeviceTreeAssert.ParseFails(builder.Build(), $"nests deeper than {FlattenedDeviceTree.MaxDepth} levels");
    }

    [Fact]
    public void DataAfterFdtEndIsRefused()
    {
        byte[] blob = new FdtBuilder().BeginNode(string.Empty).EndNode().End().Nop().Build(appendEnd: false);

        DeviceTreeAssert.ParseFails(blob, "4 bytes of data after FDT_END");
    }

    [Fact]
    public void MoreNodesThanTheBoundAreRefused()
    {
        var builder = new FdtBuilder().BeginNode(string.Empty);
        for (int i = 0; i < FlattenedDeviceTree.MaxNodes; i++)
        {
            builder.BeginNode($"n{i}").EndNode();
        }

        DeviceTreeAssert.ParseFails(builder.EndNode().Build(), $"more than {FlattenedDeviceTree.MaxNodes} nodes");
    }

    [Fact]
    public void MorePropertiesThanTheBoundAreRefused()
    {
        const int PerNode = 32;
        var builder = new FdtBuilder().BeginNode(string.Empty);
        for (int node = 0; node <= FlattenedDeviceTree.MaxProperties / PerNode; node++)
        {
            builder.BeginNode($"n{node}");
            for (int p = 0; p < PerNode; p++)
            {
                builder.Empty($"p{p}");
            }

            builder.EndNode();
        }

        DeviceTreeAssert.ParseFails(builder.EndNode().Build(), $"more than {FlattenedDeviceTree.MaxProperties} properties");
    }

    [Fact]
    public void GrammarViolationsAreRefused()
    {
        DeviceTreeAssert.ParseFails(new FdtBuilder().Word(0x5).Build(), "unknown token 0x00000005 at offset 0x38");
        DeviceTreeAssert.ParseFails(new FdtBuilder().Cells("a", 1).BeginNode(string.Empty).EndNode().Build(), "outside any node");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode(string.Empty).BeginNode("c").EndNode().Cells("a", 1).EndNode().Build(), "properties must precede children");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode("root").EndNode().Build(), "the root's name must be empty");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode(string.Empty).BeginNode(string.Empty).EndNode().EndNode().Build(), "invalid name ''");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode(string.Empty).BeginNode("a/b").EndNode().EndNode().Build(), "invalid name 'a/b'");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode(string.Empty).BeginNode("a").EndNode().BeginNode("a").EndNode().EndNode().Build(), "duplicates the name /a");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode(string.Empty).Cells("a", 1).Cells("a", 2).EndNode().Build(), "duplicates 'a' of /");
        DeviceTreeAssert.ParseFails(new FdtBuilder().BeginNode(string.Empty).BeginNode(new string('x', 257)).EndNode().EndNode().Build(), "longer than 256");
    }

    [Fact]
    public void BadPhandlesAreRefused()
    {
        static byte[] Two(uint first, uint second) => new FdtBuilder().BeginNode(string.Empty)
            .BeginNode("a").Cells("phandle", first).EndNode()
            .BeginNode("b").Cells("phandle", second).EndNode()
            .EndNode().Build();

        DeviceTreeAssert.ParseFails(Two(1, 1), "duplicates phandle 0x1 of /a");
        DeviceTreeAssert.ParseFails(Two(1, 0), "reserved phandle 0x0");
        DeviceTreeAssert.ParseFails(Two(1, 0xFFFF_FFFF), "reserved phandle 0xffffffff");
        DeviceTreeAssert.ParseFails(
            new FdtBuilder().BeginNode(string.Empty).Cells("phandle", 1).Cells("linux,phandle", 2).EndNode().Build(),
            "already has phandle 0x1");
        DeviceTreeAssert.ParseFails(
            new FdtBuilder().BeginNode(string.Empty).Cells("phandle", 1, 2).EndNode().Build(),
            "not the 4 of a u32");
    }

    [Fact]
    public void BadMemoryReservationsAreRefused()
    {
        byte[] wraps = new FdtBuilder().Reserve(0xFFFF_FFFF_FFFF_F000, 0x2000).BeginNode(string.Empty).EndNode().Build();
        DeviceTreeAssert.ParseFails(wraps, "wraps past the end of the address space");

        // Point the reservation block at the last 8 bytes: its first entry cannot fit.
        byte[] blob = QemuVirt();
        FdtBuilder.SetField(blob, FdtBuilder.OffMemRsvmapOffset, (uint)(blob.Length - 8) & ~7u);
        DeviceTreeAssert.ParseFails(blob, "no terminating entry");

        var many = new FdtBuilder();
        for (int i = 0; i <= FlattenedDeviceTree.MaxMemoryReservations; i++)
        {
            many.Reserve((ulong)i << 20, 0x1000);
        }

        DeviceTreeAssert.ParseFails(many.BeginNode(string.Empty).EndNode().Build(), "more than 1024 memory reservation entries");
    }
}
