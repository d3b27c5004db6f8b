using VirtioNet.Net;
using VirtioNet.Net.Vlan;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>802.1Q tag insertion, stripping and TCI parsing on spans.</summary>
public sealed class VlanFrameTests
{
    private static byte[] Frame(int length)
    {
        byte[] frame = new byte[length];
        new Random(length).NextBytes(frame);
        frame[12] = 0x08;
        frame[13] = 0x00;
        return frame;
    }

    [Fact]
    public void InsertPutsTpidAndTciAfterTheAddresses()
    {
        byte[] frame = Frame(64);
        byte[] tagged = new byte[68];
        Assert.Equal(68, VlanFrame.InsertTag(frame, new VlanTag(100, priority: 5), tagged));
        Assert.Equal(frame.AsSpan(0, 12).ToArray(), tagged.AsSpan(0, 12).ToArray());
        Assert.Equal(new byte[] { 0x81, 0x00, 0xa0, 0x64 }, tagged.AsSpan(12, 4).ToArray());
        Assert.Equal(frame.AsSpan(12).ToArray(), tagged.AsSpan(16).ToArray());
    }

    [Fact]
    public void StripRestoresTheFrameAndReportsTheTag()
    {
        byte[] frame = Frame(1514);
        byte[] tagged = new byte[1518];
        var tag = new VlanTag(4095, priority: 1, dropEligible: true);
        VlanFrame.InsertTag(frame, tag, tagged);

        Assert.True(VlanFrame.TryStripTag(tagged, out VlanTag found, out int length));
        Assert.Equal(tag, found);
        Assert.Equal(1514, length);
        Assert.Equal(frame, tagged.AsSpan(0, length).ToArray());
    }

    [Fact]
    public void AnUntaggedFrameIsLeftAlone()
    {
        byte[] frame = Frame(60);
        byte[] copy = (byte[])frame.Clone();
        Assert.False(VlanFrame.TryStripTag(frame, out _, out int length));
        Assert.Equal(60, length);
        Assert.Equal(copy, frame);
        Assert.False(VlanFrame.TryReadTag(frame.AsSpan(0, 10), out _));
    }

    [Theory]
    [InlineData(0xA00A, 10, 5, false)]
    [InlineData(0x3FFF, 4095, 1, true)]
    [InlineData(0x0000, 0, 0, false)]
    [InlineData(0xF001, 1, 7, true)]
    public void TheTciSplitsIntoPriorityDeiAndId(int tci, int id, int priority, bool dei)
    {
        VlanTag tag = VlanTag.FromTci((ushort)tci);
        Assert.Equal(id, tag.Id);
        Assert.Equal(priority, tag.Priority);
        Assert.Equal(dei, tag.DropEligible);
        Assert.Equal(tag, new VlanTag(id, priority, dei));
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(-1)]
    [InlineData(65535)]
    public void AVlanIdAbove4095IsOutOfRange(int id)
    {
        ArgumentOutOfRangeException e = Assert.Throws<ArgumentOutOfRangeException>(() => new VlanTag(id));
        Assert.Contains("4095", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void APriorityAbove7IsOutOfRange() => Assert.Throws<ArgumentOutOfRangeException>(() => new VlanTag(1, priority: 8));

    [Fact]
    public void ADestinationTooShortForTheTagIsRefused() =>
        Assert.Throws<ArgumentException>(() => VlanFrame.InsertTag(Frame(64), new VlanTag(1), new byte[67]));

    [Fact]
    public void AFrameShorterThanAnEthernetHeaderCannotBeTagged() =>
        Assert.Throws<ArgumentException>(() => VlanFrame.InsertTag(new byte[EthernetFrame.HeaderLength - 1], new VlanTag(1), new byte[64]));
}
