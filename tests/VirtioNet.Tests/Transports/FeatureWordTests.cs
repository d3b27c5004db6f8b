using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports.Mmio;
using VirtioNet.Transports.Pci;
using Xunit;

namespace VirtioNet.Tests.Transports;

/// <summary>
/// Feature words 2 and 3 (bits 64 to 127): read and written through the selects on virtio-mmio v2 and virtio-pci
/// modern, never selected on legacy interfaces, never accepted when the driver does not know them. Against software
/// register files (no peer here offers a bit above 63: QEMU 7.2 and 10.0 present 0 there on PCI and fold the select
/// onto word 1 on virtio-mmio, which <see cref="AnMmioDeviceThatFoldsSelectsAboveOneOffersNothingAbove63AndKeepsWord1"/> plays).
/// </summary>
public sealed class FeatureWordTests
{
    private const ulong Low = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioFeatures.EventIdx;

    // Bits 65 and 67 (GUEST/HOST_UDP_TUNNEL_GSO), and 100, which no device type defines.
    private static readonly VirtioFeatureSet OfferedHigh = VirtioFeatureSet.FromBit(65) | VirtioFeatureSet.FromBit(67) | VirtioFeatureSet.FromBit(100);

    private static VirtioFeatureSet KnownHigh => VirtioFeatureSet.FromBit(65) | VirtioFeatureSet.FromBit(70);

    [Fact]
    public void ModernMmioReadsAndWritesBitsAbove63ThroughSelects2And3BeforeWords0And1()
    {
        var device = new SoftwareMmioDevice { OfferedFeatures = Low, OfferedFeaturesHigh = OfferedHigh.High };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(
            transport, 1, VirtioFeatureSet.FromUInt64(VirtioNetFeatures.Mac) | KnownHigh, VirtioFeatureSet.None, null);

        Assert.Equal(new VirtioFeatureSet(VirtioFeatures.Version1 | VirtioNetFeatures.Mac, VirtioFeatureSet.FromBit(65).High), accepted);
        Assert.Equal(accepted.Low, device.DriverFeatures);
        Assert.Equal(accepted.High, device.DriverFeaturesHigh);
        Assert.NotEqual(0, device.Status & (byte)VirtioDeviceStatus.FeaturesOk);

        // The driver's selects: 2 and 3 written before 0 and 1 (a folding device then gets word 1 rewritten last).
        int two = device.FeatureSelectsWritten.LastIndexOf(2);
        int zero = device.FeatureSelectsWritten.LastIndexOf(0);
        Assert.True(two >= 0 && two < zero, string.Join(",", device.FeatureSelectsWritten));
    }

    [Fact]
    public void BitsAbove63OfferedToADriverThatDoesNotKnowThemAreNotAcceptedNorWritten()
    {
        var device = new SoftwareMmioDevice { OfferedFeatures = Low, OfferedFeaturesHigh = OfferedHigh.High };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        // The 64-bit overload: a driver written before bits above 63 existed.
        ulong accepted = VirtioDeviceInitializer.Negotiate(transport, 1, ulong.MaxValue);

        Assert.Equal(Low, accepted);
        Assert.Equal(0UL, device.DriverFeaturesHigh);
        Assert.NotEqual(0, device.Status & (byte)VirtioDeviceStatus.FeaturesOk);

        // The 128-bit one with nothing above 63 supported: the same.
        var device2 = new SoftwareMmioDevice { OfferedFeatures = Low, OfferedFeaturesHigh = OfferedHigh.High };
        VirtioFeatureSet accepted2 = VirtioDeviceInitializer.Negotiate(
            new VirtioMmioTransport(device2, 0x10008000, null), 1, VirtioFeatureSet.FromUInt64(ulong.MaxValue), VirtioFeatureSet.None, null);
        Assert.Equal(VirtioFeatureSet.FromUInt64(Low), accepted2);
        Assert.Equal(0UL, device2.DriverFeaturesHigh);
    }

    [Fact]
    public void ARequiredBitAbove63ThatIsNotOfferedFailsNegotiation()
    {
        var device = new SoftwareMmioDevice { OfferedFeatures = Low, OfferedFeaturesHigh = OfferedHigh.High };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        var e = Assert.Throws<VirtioException>(() => VirtioDeviceInitializer.Negotiate(transport, 1, KnownHigh, VirtioFeatureSet.FromBit(70), null));

        Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
        Assert.NotEqual(0, device.Status & (byte)VirtioDeviceStatus.Failed);
    }

    [Fact]
    public void LegacyMmioNeverSelectsAFeatureWordOtherThan0()
    {
        var device = new SoftwareMmioDevice { Version = 1, OfferedFeatures = VirtioNetFeatures.Mac, OfferedFeaturesHigh = OfferedHigh.High };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(transport, 1, VirtioFeatureSet.FromUInt64(ulong.MaxValue) | KnownHigh, VirtioFeatureSet.None, null);

        Assert.Equal(VirtioFeatureSet.FromUInt64(VirtioNetFeatures.Mac), accepted);
        Assert.NotEmpty(device.FeatureSelectsWritten);
        Assert.All(device.FeatureSelectsWritten, s => Assert.Equal(0u, s));
        Assert.Equal(0UL, transport.ReadDeviceFeaturesHigh());
        Assert.All(device.FeatureSelectsWritten, s => Assert.Equal(0u, s));
    }

    [Fact]
    public void AnMmioDeviceThatFoldsSelectsAboveOneOffersNothingAbove63AndKeepsWord1()
    {
        // QEMU's virtio-mmio before 10.1: select 2 or 3 acts as 1. Read naively, VERSION_1 (32) would look like
        // RSS_CONTEXT (64) and RING_PACKED (34) like GUEST_UDP_TUNNEL_GSO_CSUM (66).
        var device = new SoftwareMmioDevice { OfferedFeatures = Low | VirtioFeatures.RingPacked, FoldsFeatureSelectsAboveOne = true };
        var transport = new VirtioMmioTransport(device, 0x10008000, null);

        Assert.Equal(0UL, transport.ReadDeviceFeaturesHigh());
        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(
            transport, 1, VirtioFeatureSet.FromUInt64(ulong.MaxValue) | VirtioFeatureSet.FromBit(64) | VirtioFeatureSet.FromBit(66), VirtioFeatureSet.None, null);

        Assert.Equal(VirtioFeatureSet.FromUInt64(Low | VirtioFeatures.RingPacked), accepted);
        Assert.Equal(Low | VirtioFeatures.RingPacked, device.DriverFeatures);
        Assert.NotEqual(0, device.Status & (byte)VirtioDeviceStatus.FeaturesOk);
    }

    [Fact]
    public void ModernPciReadsAndWritesBitsAbove63ThroughFeatureSelect2And3()
    {
        var common = new FeatureWordCommonCfg(new PciTestWindow(0x4000)) { Offered = new VirtioFeatureSet(Low, OfferedHigh.High) };
        using var transport = new VirtioPciModernTransport(
            new PciFunctionAccess("00:01.0", PciConfigSpaceBuilder.ModernNet(), [null, new PciTestWindow(0x1000), null, null, common, null]),
            VirtioPciInterruptMode.None);

        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(
            transport, 1, VirtioFeatureSet.FromUInt64(VirtioNetFeatures.Mac) | KnownHigh, VirtioFeatureSet.None, null);

        Assert.Equal(new VirtioFeatureSet(VirtioFeatures.Version1 | VirtioNetFeatures.Mac, VirtioFeatureSet.FromBit(65).High), accepted);
        Assert.Equal(accepted, common.Accepted);
        Assert.Contains(2u, common.DriverSelects);
        Assert.Contains(3u, common.DriverSelects);
    }

    [Fact]
    public void APciDeviceOfferingNothingAbove63GetsNoWriteToDriverFeatureWords2And3()
    {
        // QEMU 7.2/10.0's virtio-pci: device_feature reads 0 for a select above 1.
        var common = new FeatureWordCommonCfg(new PciTestWindow(0x4000)) { Offered = VirtioFeatureSet.FromUInt64(Low) };
        using var transport = new VirtioPciModernTransport(
            new PciFunctionAccess("00:01.0", PciConfigSpaceBuilder.ModernNet(), [null, new PciTestWindow(0x1000), null, null, common, null]),
            VirtioPciInterruptMode.None);

        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(transport, 1, VirtioFeatureSet.FromUInt64(ulong.MaxValue) | KnownHigh, VirtioFeatureSet.None, null);

        Assert.Equal(VirtioFeatureSet.FromUInt64(Low), accepted);
        Assert.Contains(2u, common.DeviceSelects);
        Assert.DoesNotContain(2u, common.DriverSelects);
        Assert.DoesNotContain(3u, common.DriverSelects);
        Assert.Equal(accepted, common.Accepted);
    }

    [Fact]
    public void ALegacyTransportIsNeverAskedForBitsAbove63()
    {
        var transport = new SoftwareNetTransport(VirtioNetFeatures.Mac, legacy: true) { OfferedFeaturesHigh = OfferedHigh.High };

        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(transport, 1, VirtioFeatureSet.FromUInt64(ulong.MaxValue) | KnownHigh, VirtioFeatureSet.None, null);

        Assert.Equal(VirtioFeatureSet.FromUInt64(VirtioNetFeatures.Mac), accepted);
        Assert.Equal(0, transport.HighFeatureReads);
        Assert.Null(transport.DriverFeaturesHigh);
    }

    [Fact]
    public void TheNetDeviceReportsOfferedBitsAbove63AndAcceptsNoneItDoesNotImplement()
    {
        using var memory = new HeapDmaAllocator();
        var transport = new SoftwareNetTransport(Low | VirtioNetFeatures.Status) { OfferedFeaturesHigh = (VirtioNetFeatures.RssContext | VirtioFeatureSet.FromBit(100)).High };

        using (var net = VirtioNetDevice.Open(transport, memory, new VirtioNetOptions { OperationMode = OperationMode.Poll }))
        {
            Assert.Equal(transport.OfferedFeaturesHigh, net.OfferedFeatures.High);
            Assert.Equal(0UL, net.NegotiatedFeatures.High);
            Assert.Equal(net.NegotiatedFeatures, net.NegotiatedFeatures.Low);
            Assert.Equal(0UL, transport.DriverFeaturesHigh);
            Assert.Contains("VIRTIO_NET_F_RSS_CONTEXT", VirtioNetFeatureNames.Describe(net.OfferedFeatures));
            Assert.Contains("BIT_100", VirtioNetFeatureNames.Describe(net.OfferedFeatures));
        }

        Assert.True(memory.AllGuardsIntact());
    }

    [Fact]
    public void AFeatureSetSplitsIntoTheWordsTheSelectsShow()
    {
        VirtioFeatureSet set = VirtioFeatureSet.FromWords(0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444);

        Assert.Equal(0x2222_2222u, set.GetWord(1));
        Assert.Equal(0x3333_3333u, set.GetWord(2));
        Assert.Equal(0x4444_4444u, set.GetWord(3));
        Assert.True(VirtioFeatureSet.FromBit(127).Contains(127));
        Assert.False(VirtioFeatureSet.FromBit(127).Contains(63));
        Assert.Equal(VirtioFeatureSet.FromBit(64), (VirtioFeatureSet.FromBit(64) | VirtioFeatureSet.FromBit(3)).Without(VirtioFeatureSet.FromBit(3)));

        // A ulong mask complemented before the conversion clears bits 64 to 127: Without keeps them.
        VirtioFeatureSet both = VirtioFeatureSet.FromBit(64) | VirtioFeatureSet.FromBit(3);
        Assert.Equal(VirtioFeatureSet.FromBit(64), both.Without(1UL << 3));
        Assert.Equal(VirtioFeatureSet.None, both & ~(1UL << 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => VirtioFeatureSet.FromBit(128));
        Assert.Equal("0x0000000000000001_0000000000000000", VirtioFeatureSet.FromBit(64).ToString());
    }

    /// <summary>
    /// virtio_pci_common_cfg's four feature registers as §4.1.4.3 describes them, over 128 bits (the rest of the
    /// structure is the plain window beneath).
    /// </summary>
    private sealed class FeatureWordCommonCfg(PciTestWindow inner) : IRegisterWindow
    {
        private uint _deviceSelect;
        private uint _driverSelect;
        private readonly uint[] _driverWords = new uint[4];

        public VirtioFeatureSet Offered { get; init; }

        public VirtioFeatureSet Accepted => VirtioFeatureSet.FromWords(_driverWords[0], _driverWords[1], _driverWords[2], _driverWords[3]);

        public List<uint> DeviceSelects { get; } = [];

        public List<uint> DriverSelects { get; } = [];

        public ulong Length => inner.Length;

        public byte Read8(ulong offset) => inner.Read8(offset);

        public ushort Read16(ulong offset) => inner.Read16(offset);

        public uint Read32(ulong offset) => offset switch
        {
            0x04 => _deviceSelect < 4 ? Offered.GetWord((int)_deviceSelect) : 0,
            _ => inner.Read32(offset),
        };

        public ulong Read64(ulong offset) => inner.Read64(offset);

        public void Write8(ulong offset, byte value) => inner.Write8(offset, value);

        public void Write16(ulong offset, ushort value) => inner.Write16(offset, value);

        public void Write32(ulong offset, uint value)
        {
            switch (offset)
            {
                case 0x00:
                    _deviceSelect = value;
                    DeviceSelects.Add(value);
                    break;
                case 0x08:
                    _driverSelect = value;
                    DriverSelects.Add(value);
                    break;
                case 0x0c when _driverSelect < 4:
                    _driverWords[_driverSelect] = value;
                    break;
                default:
                    inner.Write32(offset, value);
                    break;
            }
        }

        public void Write64(ulong offset, ulong value) => inner.Write64(offset, value);
    }
}
