using System.Text.Json;
using VirtioNet.Cli;
using VirtioNet.Cli.Offloads;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Cli;

/// <summary>vnet offloads' rules (ethtool -k/-K): which offloads exist, their state, and which --set requests are refused.</summary>
public sealed class OffloadCatalogTests
{
    private static readonly string[] TunnelOffloads = ["tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation", "rx-udp_tnl-gro-hw", "rx-udp_tnl-csum-gro-hw"];

    // What QEMU 7.2 and 10.0 offer on their user network: no offload but VLAN filtering, nothing above bit 63.
    private static readonly VirtioFeatureSet QemuUserNetwork =
        VirtioNetFeatures.CtrlGuestOffloads | VirtioNetFeatures.Mac | VirtioNetFeatures.MrgRxBuf | VirtioNetFeatures.Status | VirtioNetFeatures.CtrlVq |
        VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlVlan | VirtioFeatures.Version1;

    // A device with every segmentation offload, the UDP tunnel ones (65 to 68) included.
    private static readonly VirtioFeatureSet TunnelDevice =
        VirtioNetFeatures.Csum | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.CtrlGuestOffloads | VirtioNetFeatures.CtrlVq |
        VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUso | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 |
        VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6 | VirtioFeatures.Version1 |
        VirtioNetFeatures.GuestUdpTunnelGso | VirtioNetFeatures.GuestUdpTunnelGsoCsum | VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.HostUdpTunnelGsoCsum;

    private static OffloadState Row(IReadOnlyList<OffloadState> states, string name) => Assert.Single(states, s => s.Offload.Name == name);

    [Fact]
    public void EveryOffloadFeatureTheDriverImplementsBelongsToAnOffload()
    {
        // GUEST_HDRLEN (a header-length promise) and RSC_EXT (coalescing counts) change what the header carries, not what is offloaded.
        VirtioFeatureSet implemented = (VirtioFeatureSet)VirtioNetOptions.OffloadFeatures | VirtioNetOptions.HighOffloadFeatures;
        VirtioFeatureSet listed = OffloadCatalog.All.Aggregate(VirtioFeatureSet.None, (set, o) => set | o.Features);
        Assert.Equal(VirtioFeatureSet.None, implemented.Without(listed).Without(VirtioNetFeatures.GuestHdrLen | VirtioNetFeatures.RscExt));
        Assert.Equal(OffloadCatalog.All.Count, OffloadCatalog.All.Select(o => o.Name).Distinct().Count());
    }

    [Fact]
    public void TheTunnelOffloadsAreTheFeaturesAboveSixtyThreeAndTheReceiveOnesTravelAsBits46And47()
    {
        IReadOnlyList<Offload> tunnel = [.. TunnelOffloads.Select(n => OffloadCatalog.All.Single(o => o.Name == n))];
        Assert.Equal([67, 68, 65, 66], tunnel.Select(o => FeatureListing.Bits(o.Features).Single()));
        Assert.Equal([0UL, 0UL, VirtioNetFeatures.GuestUdpTunnelGsoOffload, VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload], tunnel.Select(o => o.GuestOffloadBits));
    }

    [Fact]
    public void OnADeviceWithoutTunnelGsoTheTunnelOffloadsAreOffAndNotOffered()
    {
        IReadOnlyList<OffloadState> states = OffloadCatalog.States(QemuUserNetwork, QemuUserNetwork, guestOffloads: 0);
        foreach (string name in TunnelOffloads)
        {
            OffloadState s = Row(states, name);
            Assert.False(s.On);
            Assert.False(s.Offered);
            Assert.True(s.Fixed);
            Assert.Equal("off [not offered]", s.Text);
        }

        Assert.Equal("on [fixed]", Row(states, "rx-vlan-filter").Text);
    }

    [Fact]
    public void OnADeviceWithTunnelGsoTheyAreOnAndTheReceiveOnesCanChange()
    {
        VirtioFeatureSet negotiated = VirtioNetOptions.WithoutUnmetDependencies(TunnelDevice);
        Assert.Equal(TunnelDevice, negotiated);
        const ulong guestOffloads = VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestUso4 |
            VirtioNetFeatures.GuestUso6 | VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload;
        IReadOnlyList<OffloadState> states = OffloadCatalog.States(TunnelDevice, negotiated, guestOffloads);

        Assert.Equal("on [fixed]", Row(states, "tx-udp_tnl-segmentation").Text);
        Assert.Equal("on [fixed]", Row(states, "tx-udp_tnl-csum-segmentation").Text);

        // Bit 46 was turned off with CTRL_GUEST_OFFLOADS_SET; 47 is still on.
        Assert.Equal("off", Row(states, "rx-udp_tnl-gro-hw").Text);
        Assert.Equal("on", Row(states, "rx-udp_tnl-csum-gro-hw").Text);
        Assert.Equal(VirtioNetFeatures.GuestUdpTunnelGsoOffload, Row(states, "rx-udp_tnl-gro-hw").Offload.NegotiatedGuestOffloadBits(negotiated));
        Assert.Equal(0UL, Row(states, "rx-udp_tnl-gro-hw").Offload.NegotiatedGuestOffloadBits(QemuUserNetwork));

        // rx-gro-hw: only the negotiated bits can be turned on (UFO and ECN were not).
        Assert.Equal(VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6, Row(states, "rx-gro-hw").Offload.NegotiatedGuestOffloadBits(negotiated));
    }

    [Fact]
    public void TheStatesOfADeviceOfferingTunnelGsoComeFromWhatTheDriverNegotiated()
    {
        // Software transport offering the tunnel features: no peer here offers them (QEMU 7.2 and 10.0 do not).
        using var memory = new HeapDmaAllocator();
        var transport = new SoftwareNetTransport(TunnelDevice.Low & ~(VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlGuestOffloads)) { OfferedFeaturesHigh = TunnelDevice.High };
        using (var net = VirtioNetDevice.Open(transport, memory, new VirtioNetOptions { OperationMode = OperationMode.Poll }))
        {
            IReadOnlyList<OffloadState> states = OffloadCatalog.States(net.OfferedFeatures, net.NegotiatedFeatures, net.Control.GuestOffloads);
            Assert.All(TunnelOffloads, name => Assert.True(Row(states, name).On, name));

            // Without CTRL_GUEST_OFFLOADS nothing changes at run time: every offered receive offload is fixed too.
            Assert.Equal("on [fixed]", Row(states, "rx-udp_tnl-gro-hw").Text);
        }

        Assert.True(memory.AllGuardsIntact());
    }

    [Theory]
    [InlineData("tx-udp_tnl-segmentation=on", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)")]
    [InlineData("tx-udp_tnl-segmentation=off", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)")]
    [InlineData("tx-udp_tnl-csum-segmentation=off", "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM (68)")]
    [InlineData("rx-udp_tnl-gro-hw=off", "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO (65)")]
    [InlineData("rx-udp_tnl-csum-gro-hw=on", "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM (66)")]
    public void ChangingAnOffloadTheDeviceDoesNotOfferIsRefusedEitherWay(string setting, string feature)
    {
        var changes = OffloadCatalog.ParseChanges([setting]);
        string? refusal = OffloadCatalog.Refusal(changes, QemuUserNetwork, QemuUserNetwork);
        Assert.Equal($"--set {setting}: not offered by the device ({feature}); it stays off [not offered].", refusal);
    }

    [Fact]
    public void ARefusalNamesEveryOffloadNotOfferedAndOnlyThose()
    {
        var changes = OffloadCatalog.ParseChanges(["rx-vlan-filter=off", "tx-udp_tnl-segmentation=off", "rx-udp_tnl-gro-hw=on"]);
        Assert.Equal(
            "--set tx-udp_tnl-segmentation=off rx-udp_tnl-gro-hw=on: not offered by the device " +
            "(VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO (65), VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)); they stay off [not offered].",
            OffloadCatalog.Refusal(changes, QemuUserNetwork, QemuUserNetwork));
        Assert.Null(OffloadCatalog.Refusal(OffloadCatalog.ParseChanges(["rx-vlan-filter=off"]), QemuUserNetwork, QemuUserNetwork));
        Assert.Null(OffloadCatalog.Refusal(OffloadCatalog.ParseChanges(["tx-udp_tnl-segmentation=off", "rx-udp_tnl-gro-hw=on"]), TunnelDevice, TunnelDevice));
    }

    [Fact]
    public void TurningOnAnOfferedOffloadThatWasNotNegotiatedIsRefused()
    {
        // Offered, but HOST_UDP_TUNNEL_GSO needs HOST_TSO4/6 and HOST_USO, which were left out (§5.1.3.1).
        VirtioFeatureSet negotiated = TunnelDevice.Without(VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.HostUdpTunnelGsoCsum);
        Assert.Equal(
            "--set tx-udp_tnl-segmentation=on: offered but not negotiated (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67); a feature it depends on is missing).",
            OffloadCatalog.Refusal(OffloadCatalog.ParseChanges(["tx-udp_tnl-segmentation=on"]), TunnelDevice, negotiated));
        Assert.Null(OffloadCatalog.Refusal(OffloadCatalog.ParseChanges(["tx-udp_tnl-segmentation=off"]), TunnelDevice, negotiated));
    }

    [Fact]
    public void TurningOffAnOffloadOnlyNegotiationChangesLeavesItsBitsAboveSixtyThreeOutOfNegotiation()
    {
        VirtioFeatureSet disabled = OffloadCatalog.DisabledByNegotiation(OffloadCatalog.ParseChanges(["tx-udp_tnl-segmentation=off", "rx-udp_tnl-gro-hw=off", "tx-checksumming=off", "tx-udp_tnl-csum-segmentation=on"]));

        // rx-udp_tnl-gro-hw changes at run time (CTRL_GUEST_OFFLOADS bit 46), so it stays negotiable.
        Assert.Equal(VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.Csum, disabled);
    }

    [Fact]
    public void AnUnknownOffloadIsAUsageError()
    {
        CliException e = Assert.Throws<CliException>(() => OffloadCatalog.ParseChanges(["warp-drive=on"]));
        Assert.StartsWith("--set: 'warp-drive' is not an offload (use rx-checksumming, ", e.Message, StringComparison.Ordinal);
        Assert.Contains("tx-udp_tnl-segmentation", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheJsonListsEveryOffloadWithItsFeatureNamesAndBits()
    {
        using JsonDocument json = JsonDocument.Parse(OffloadListing.ToJson(OffloadCatalog.States(QemuUserNetwork, QemuUserNetwork, 0)).ToJsonString());
        JsonElement offloads = json.RootElement.GetProperty("offloads");
        Assert.Equal(OffloadCatalog.All.Select(o => o.Name), offloads.EnumerateObject().Select(p => p.Name));
        JsonElement tunnel = offloads.GetProperty("tx-udp_tnl-csum-segmentation");
        Assert.False(tunnel.GetProperty("on").GetBoolean());
        Assert.False(tunnel.GetProperty("offered").GetBoolean());
        Assert.True(tunnel.GetProperty("fixed").GetBoolean());
        Assert.Equal(["VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM"], tunnel.GetProperty("features").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([68], tunnel.GetProperty("bits").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([7, 8, 9, 10, 54, 55], offloads.GetProperty("rx-gro-hw").GetProperty("bits").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void TheTextIsEthtoolsLinesWithTheFeatureBitsBesideThem()
    {
        string text = OffloadListing.ToText(OffloadCatalog.States(QemuUserNetwork, QemuUserNetwork, 0));
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Features for net0:", lines[0]);
        Assert.Contains("tx-udp_tnl-segmentation:      off [not offered]  VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO (67)", lines);
        Assert.Contains("rx-vlan-filter:               on [fixed]         VIRTIO_NET_F_CTRL_VLAN (19)", lines);

        // A second feature bit of one offload goes on a line of its own, under the first.
        int tso = Array.FindIndex(lines, l => l.StartsWith("tcp-segmentation-offload:", StringComparison.Ordinal));
        Assert.EndsWith("VIRTIO_NET_F_HOST_TSO4 (11)", lines[tso], StringComparison.Ordinal);
        Assert.Equal(new string(' ', 49) + "VIRTIO_NET_F_HOST_TSO6 (12)", lines[tso + 1]);
    }
}
