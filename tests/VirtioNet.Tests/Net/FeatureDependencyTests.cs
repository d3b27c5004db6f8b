using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// §5.1.3.1 (Feature bit requirements) applied to what the device offers: a device may offer a feature without one it
/// requires, and the driver must then not accept it. Against the software transport, which offers what the test says.
/// </summary>
public sealed class FeatureDependencyTests
{
    public static TheoryData<string, ulong, ulong> Cases => new()
    {
        { "HOST_TSO4 without CSUM", VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostEcn, 0 },
        { "GUEST_TSO6 without GUEST_CSUM", VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestEcn, 0 },
        { "HOST_ECN without TSO", VirtioNetFeatures.Csum | VirtioNetFeatures.HostEcn, VirtioNetFeatures.Csum },
        { "HASH_TUNNEL without RSS or HASH_REPORT", VirtioNetFeatures.CtrlVq | VirtioNetFeatures.HashTunnel, VirtioNetFeatures.CtrlVq },
        { "HASH_TUNNEL with HASH_REPORT", VirtioNetFeatures.CtrlVq | VirtioNetFeatures.HashReport | VirtioNetFeatures.HashTunnel, VirtioNetFeatures.CtrlVq | VirtioNetFeatures.HashReport | VirtioNetFeatures.HashTunnel },
        { "HASH_TUNNEL with RSS but no CTRL_VQ", VirtioNetFeatures.Rss | VirtioNetFeatures.HashTunnel, 0 },
        { "DEVICE_STATS and VQ_NOTF_COAL without CTRL_VQ", VirtioNetFeatures.DeviceStats | VirtioNetFeatures.VqNotfCoal, 0 },
        { "CTRL_RX_EXTRA without CTRL_RX", VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRxExtra, VirtioNetFeatures.CtrlVq },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void AFeatureOfferedWithoutWhatItRequiresIsNotAccepted(string why, ulong offered, ulong expected)
    {
        Assert.True(VirtioNetOptions.WithoutUnmetDependencies(offered) == expected, why);

        var transport = new SoftwareNetTransport(VirtioFeatures.Version1 | offered);
        ulong accepted = VirtioDeviceInitializer.Negotiate(transport, 1, new VirtioNetOptions().SupportedFeatures, dropUnmetDependencies: VirtioNetOptions.WithoutUnmetDependencies);
        Assert.Equal(VirtioFeatures.Version1 | expected, accepted);
        Assert.Equal(accepted, transport.DriverFeatures);
    }
}
