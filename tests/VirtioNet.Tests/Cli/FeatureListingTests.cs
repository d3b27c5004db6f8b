using VirtioNet.Cli;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Cli;

/// <summary>The feature lists of vnet probe, dump, ping and offloads: all 128 bits, by the driver's spec names.</summary>
public sealed class FeatureListingTests
{
    private static readonly VirtioFeatureSet Tunnel =
        VirtioNetFeatures.GuestUdpTunnelGso | VirtioNetFeatures.GuestUdpTunnelGsoCsum | VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.HostUdpTunnelGsoCsum;

    [Fact]
    public void BitsAboveSixtyThreeAreListedByTheirSpecNamesAfterTheLowOnes()
    {
        VirtioFeatureSet features = Tunnel | VirtioNetFeatures.Mac | VirtioFeatures.Version1 | VirtioNetFeatures.SpeedDuplex;

        Assert.Equal(
            [
                "VIRTIO_NET_F_MAC", "VIRTIO_F_VERSION_1", "VIRTIO_NET_F_SPEED_DUPLEX",
                "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO", "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM",
                "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM",
            ],
            FeatureListing.Names(features));
    }

    [Fact]
    public void WithBitsTheNumberShowsWhichFeatureWordABitIsIn()
    {
        Assert.Equal(
            ["VIRTIO_NET_F_CSUM (0)", "VIRTIO_NET_F_RSS_CONTEXT (64)", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)", "VIRTIO_NET_F_IPSEC (70)"],
            FeatureListing.NamesWithBits(VirtioNetFeatures.Csum | VirtioNetFeatures.RssContext | VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.Ipsec));
        Assert.Equal([0, 64, 67, 127], FeatureListing.Bits(VirtioNetFeatures.Csum | VirtioNetFeatures.RssContext | VirtioNetFeatures.HostUdpTunnelGso | VirtioFeatureSet.FromBit(127)));
    }

    [Fact]
    public void ABitNoNameIsKnownForIsShownByNumberUpToBit127()
    {
        Assert.Equal(["BIT_71", "BIT_100", "BIT_127"], FeatureListing.Names(VirtioFeatureSet.FromBit(71) | VirtioFeatureSet.FromBit(100) | VirtioFeatureSet.FromBit(127)));
    }

    [Fact]
    public void AnotherDeviceTypeGetsOnlyTheDeviceIndependentNames()
    {
        // Bit 0 is CSUM only for a network device; for an entropy device (4) it is a device-specific bit of its own.
        Assert.Equal(["BIT_0", "VIRTIO_F_VERSION_1", "BIT_67"], FeatureListing.Names(VirtioNetFeatures.Csum | VirtioFeatures.Version1 | VirtioNetFeatures.HostUdpTunnelGso, deviceId: 4));
    }

    [Fact]
    public void TheJsonFormIsTheNamesAsStrings()
    {
        Assert.Equal("[\"VIRTIO_F_VERSION_1\",\"VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO\"]", FeatureListing.ToJson(VirtioFeatures.Version1 | VirtioNetFeatures.HostUdpTunnelGso).ToJsonString());
    }

    [Fact]
    public void WhatAModernDeviceOffersIsReadFromAllFourFeatureWordsAndALegacyOnesFromOne()
    {
        // Software transport, which offers what the test says: no peer here offers bits above 63.
        var modern = new SoftwareNetTransport(VirtioFeatures.Version1 | VirtioNetFeatures.Mac) { OfferedFeaturesHigh = VirtioNetFeatures.HostUdpTunnelGso.High };
        Assert.Equal(VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.HostUdpTunnelGso, FeatureListing.ReadOffered(modern));

        var legacy = new SoftwareNetTransport(VirtioNetFeatures.Mac, legacy: true) { OfferedFeaturesHigh = VirtioNetFeatures.HostUdpTunnelGso.High };
        Assert.Equal((VirtioFeatureSet)VirtioNetFeatures.Mac, FeatureListing.ReadOffered(legacy));
        Assert.Equal(0, legacy.HighFeatureReads);
    }
}
