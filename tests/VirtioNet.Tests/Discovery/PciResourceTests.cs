using VirtioNet.Core;
using VirtioNet.Discovery.Pci;
using Xunit;

namespace VirtioNet.Tests.Discovery;

/// <summary>BAR sizing arithmetic, window allocation and the assignment plan that replaces the firmware's.</summary>
public sealed class PciResourceTests
{
    private static readonly PciWindow Io = new(PciAddressSpace.Io, false, 0, 0x0300_0000, 0x1_0000);
    private static readonly PciWindow Mem32 = new(PciAddressSpace.Memory32, false, 0x4000_0000, 0x4000_0000, 0x4000_0000);
    private static readonly PciWindow Mem64 = new(PciAddressSpace.Memory64, false, 0x4_0000_0000, 0x4_0000_0000, 0x4_0000_0000);

    [Fact]
    public void AnIoBarReadsBackItsSizeInTheLowBits()
    {
        PciBar? bar = PciBarDecoder.Decode(0, 0x1, 0xffff_ffe1, 0);

        Assert.Equal(new PciBar(0, PciAddressSpace.Io, false, 0x20), bar);
    }

    [Fact]
    public void ASixteenBitIoDecoderCountsOnlyItsImplementedBits()
    {
        Assert.Equal(0x40UL, PciBarDecoder.Decode(0, 0x1, 0x0000_ffc1, 0)!.Size);
    }

    [Fact]
    public void AThirtyTwoBitMemoryBarIsSizedFromItsWritableBits()
    {
        Assert.Equal(new PciBar(1, PciAddressSpace.Memory32, false, 0x1000), PciBarDecoder.Decode(1, 0x0, 0xffff_f000, 0));
    }

    [Fact]
    public void ASixtyFourBitPrefetchableBarTakesTheNextBarAsItsUpperHalf()
    {
        PciBar? bar = PciBarDecoder.Decode(4, 0xc, 0xffff_c00c, 0xffff_ffff);

        Assert.Equal(new PciBar(4, PciAddressSpace.Memory64, true, 0x4000), bar);
        Assert.True(bar!.Is64Bit);
    }

    [Fact]
    public void AHugeSixtyFourBitBarIsSizedFromTheUpperHalf()
    {
        Assert.Equal(0x2_0000_0000UL, PciBarDecoder.Decode(2, 0x4, 0x0000_0004, 0xffff_fffe)!.Size);
    }

    [Fact]
    public void AnUnimplementedBarReadsBackZero()
    {
        Assert.Null(PciBarDecoder.Decode(2, 0, 0, 0));
        Assert.Null(PciBarDecoder.Decode(2, 1, 1, 0));
    }

    [Fact]
    public void TheAllocatorAlignsEachRangeToItsSize()
    {
        var allocator = new PciWindowAllocator(Mem32);

        Assert.True(allocator.TryAllocate(0x1000, out ulong a));
        Assert.True(allocator.TryAllocate(0x4000, out ulong b));
        Assert.True(allocator.TryAllocate(0x10, out ulong c));

        Assert.Equal(0x4000_0000UL, a);
        Assert.Equal(0x4000_4000UL, b);
        Assert.Equal(0x4000_8000UL, c);
    }

    [Fact]
    public void TheAllocatorRefusesWhatDoesNotFitAndChangesNothing()
    {
        var small = new PciWindowAllocator(new PciWindow(PciAddressSpace.Memory32, false, 0x1000, 0x1000, 0x3000));

        Assert.False(small.TryAllocate(0x4000, out _));
        Assert.False(small.TryAllocate(0x3000, out _));             // not a power of two
        Assert.True(small.TryAllocate(0x2000, out ulong placed));   // aligned to 0x2000, ends exactly at 0x4000
        Assert.Equal(0x2000UL, placed);
        Assert.False(small.TryAllocate(0x1000, out _));
    }

    [Fact]
    public void AThirtyTwoBitLimitKeepsARangeBelowFourGiB()
    {
        var allocator = new PciWindowAllocator(new PciWindow(PciAddressSpace.Memory32, false, 0xffff_f000, 0xffff_f000, 0x10_0000));

        Assert.False(allocator.TryAllocate(0x2000, out _, 1UL << 32));
        Assert.True(allocator.TryAllocate(0x1000, out ulong placed, 1UL << 32));
        Assert.Equal(0xffff_f000UL, placed);
    }

    [Fact]
    public void ThePlanPutsEachBarInItsWindowLargestFirstAndIoAboveTheIsaRange()
    {
        PciHostBridge host = Host(Io, Mem32, Mem64);
        PciFunction net = Function(1, new PciBar(0, PciAddressSpace.Io, false, 0x20), new PciBar(1, PciAddressSpace.Memory32, false, 0x1000), new PciBar(4, PciAddressSpace.Memory64, true, 0x4000));
        PciFunction other = Function(2, new PciBar(1, PciAddressSpace.Memory32, false, 0x4000));

        IReadOnlyList<PciBarAssignment> plan = PciEnumerator.PlanAssignments(host, [net, other]);

        PciBar Find(PciFunction f, int index) => plan.Single(a => a.Function == f && a.Bar.Index == index).Bar;
        Assert.Equal(0x1000UL, Find(net, 0).PciAddress);
        Assert.Equal(0x0300_1000UL, Find(net, 0).CpuAddress);
        Assert.Equal(0x4_0000_0000UL, Find(net, 4).CpuAddress);
        Assert.Equal(0x4000_0000UL, Find(other, 1).PciAddress);   // the 16 KiB BAR goes first
        Assert.Equal(0x4000_4000UL, Find(net, 1).PciAddress);
        Assert.All(plan, a => Assert.True(a.Bar.IsAssigned));
    }

    [Fact]
    public void WithoutASixtyFourBitWindowA64BitBarGoesBelowFourGiB()
    {
        PciFunction net = Function(1, new PciBar(4, PciAddressSpace.Memory64, true, 0x4000));

        PciBarAssignment only = Assert.Single(PciEnumerator.PlanAssignments(Host(Io, Mem32), [net]));

        Assert.Equal(0x4000_0000UL, only.Bar.PciAddress);
    }

    [Fact]
    public void ABarThatCannotBePlacedFailsNamingTheBarAndTheWindow()
    {
        PciHostBridge host = Host(Io, new PciWindow(PciAddressSpace.Memory32, false, 0x4000_0000, 0x4000_0000, 0x1000));
        PciFunction net = Function(1, new PciBar(1, PciAddressSpace.Memory32, false, 0x1000), new PciBar(2, PciAddressSpace.Memory32, false, 0x1000));

        var e = Assert.Throws<VirtioException>(() => PciEnumerator.PlanAssignments(host, [net]));

        Assert.Equal(VirtioErrorReason.InvalidConfiguration, e.Reason);
        Assert.Contains("00:01.0", e.Message, StringComparison.Ordinal);
        Assert.Contains("BAR2", e.Message, StringComparison.Ordinal);
        Assert.Contains("does not fit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnIoBarWithoutAnIoWindowCannotBePlaced()
    {
        PciFunction net = Function(1, new PciBar(0, PciAddressSpace.Io, false, 0x20));

        var e = Assert.Throws<VirtioException>(() => PciEnumerator.PlanAssignments(Host(Mem32), [net]));

        Assert.Contains("no Io window", e.Message, StringComparison.Ordinal);
    }

    private static PciHostBridge Host(params PciWindow[] windows) =>
        new("/soc/pci@30000000", 0x3000_0000, 0x1000_0000, 0, 255, windows, 0x1800, 7, []);

    private static PciFunction Function(byte device, params PciBar[] bars) =>
        new(new PciFunctionAddress(0, device, 0), 0x3000_0000UL + ((ulong)device << 15), 0x1af4, 0x1000, 0x020000, 0, 0, 1, 1, bars);
}
