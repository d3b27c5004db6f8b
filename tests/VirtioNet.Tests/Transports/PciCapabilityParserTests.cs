using VirtioNet.Core;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.Tests.Transports;

/// <summary>The capability walk: QEMU's layout decoded, and malformed lists refused without an access outside configuration space.</summary>
public sealed class PciCapabilityParserTests
{
    [Fact]
    public void QemusModernLayoutIsDecodedInListOrder()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();

        PciCapabilityList list = VirtioPciCapabilityParser.Parse(config, "00:01.0");

        Assert.Equal([0x98, 0x84, 0x70, 0x60, 0x50, 0x40], list.All.Select(c => c.Offset));
        Assert.Equal("MSI-X", list.All[0].Name);
        Assert.True(list.HasModernInterface);
        VirtioPciCapability notify = list.Find(VirtioPciCapabilityType.NotifyCfg)!;
        Assert.Equal((byte)4, notify.Bar);
        Assert.Equal(0x3000u, notify.Offset);
        Assert.Equal(0x1000u, notify.Length);
        Assert.Equal(4u, notify.NotifyOffMultiplier);
        Assert.Equal(0x40, list.Find(VirtioPciCapabilityType.CommonCfg)!.ConfigOffset);
        Assert.Equal(new MsixCapability(0x98, 4, 1, 0, 1, 0x800), list.Msix);
        Assert.True(config.HighestAccessEnd <= PciConfigRegisters.ConfigSpaceSize);
    }

    [Fact]
    public void AFunctionWithoutTheCapabilitiesListBitHasNoCapabilities()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set16(PciConfigRegisters.Status, 0);

        PciCapabilityList list = VirtioPciCapabilityParser.Parse(config, "00:01.0");

        Assert.Empty(list.All);
        Assert.False(list.HasModernInterface);
        Assert.Null(list.Msix);
    }

    [Fact]
    public void AListThatLoopsBackIsRefused()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x40 + 1, 0x70);   // common → notify, which leads back to device → isr → common ...

        var e = Assert.Throws<VirtioException>(() => VirtioPciCapabilityParser.Parse(config, "00:01.0"));

        Assert.Equal(VirtioErrorReason.InvalidConfiguration, e.Reason);
        Assert.Contains("loops", e.Message, StringComparison.Ordinal);
        Assert.True(config.HighestAccessEnd <= PciConfigRegisters.ConfigSpaceSize);
    }

    [Fact]
    public void ACapabilityPointingAtItselfIsALoop()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x98 + 1, 0x98);

        var e = Assert.Throws<VirtioException>(() => VirtioPciCapabilityParser.Parse(config, "00:01.0"));

        Assert.Contains("loops back to 0x98", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0x10)]
    [InlineData(0x04)]
    [InlineData(0x3c)]
    public void APointerIntoTheHeaderIsRefused(byte pointer)
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x40 + 1, pointer);

        var e = Assert.Throws<VirtioException>(() => VirtioPciCapabilityParser.Parse(config, "00:01.0"));

        Assert.Contains("configuration header", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AVendorCapabilityRunningPastConfigurationSpaceIsRefusedBeforeItIsRead()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x40 + 1, 0xf8);
        config.Set8(0xf8, PciConfigRegisters.CapabilityIdVendorSpecific);
        config.Set8(0xf9, 0);

        var e = Assert.Throws<VirtioException>(() => VirtioPciCapabilityParser.Parse(config, "00:01.0"));

        Assert.Contains("runs past the end of configuration space", e.Message, StringComparison.Ordinal);
        Assert.True(config.HighestAccessEnd <= PciConfigRegisters.ConfigSpaceSize, $"read up to 0x{config.HighestAccessEnd:x}");
    }

    [Fact]
    public void ACapLenThatRunsPastConfigurationSpaceIsRefused()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x40 + 1, 0xe8);
        PciConfigSpaceBuilder.Vendor(config, 0xe8, 0, VirtioPciCapabilityType.VendorCfg, 4, 0, 4, capLength: 0x40);

        var e = Assert.Throws<VirtioException>(() => VirtioPciCapabilityParser.Parse(config, "00:01.0"));

        Assert.Contains("(64 bytes) runs past", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ANotifyCapabilityTooShortForItsMultiplierIsRefused()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x70 + 2, 16);

        var e = Assert.Throws<VirtioException>(() => VirtioPciCapabilityParser.Parse(config, "00:01.0"));

        Assert.Contains("notify_off_multiplier", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AVirtioCapabilityNamingAReservedBarIsIgnored()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(0x40 + 4, 6);   // common structure "in BAR 6"

        PciCapabilityList list = VirtioPciCapabilityParser.Parse(config, "00:01.0");

        Assert.Null(list.Find(VirtioPciCapabilityType.CommonCfg));
        Assert.False(list.HasModernInterface);
        Assert.Equal(6, list.All.Count);
    }

    [Fact]
    public void TheReservedLowBitsOfPointersAreMaskedOff()
    {
        PciTestWindow config = PciConfigSpaceBuilder.ModernNet();
        config.Set8(PciConfigRegisters.CapabilitiesPointer, 0x98 | 3);

        PciCapabilityList list = VirtioPciCapabilityParser.Parse(config, "00:01.0");

        Assert.Equal(0x98, list.All[0].Offset);
    }
}
