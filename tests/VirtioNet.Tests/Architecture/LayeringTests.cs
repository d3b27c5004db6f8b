using ArchUnitNET.Domain;
using ArchUnitNET.Fluent;
using ArchUnitNET.Loader;
using ArchUnitNET.xUnitV3;
using VirtioNet.Net;
using Xunit;
using static ArchUnitNET.Fluent.ArchRuleDefinition;

namespace VirtioNet.Tests.Architecture;

/// <summary>
/// Keeps the layers of docs/DESIGN.md: the driver library depends downward only, and never names a
/// concrete transport, a platform or a tool.
/// </summary>
public sealed class LayeringTests
{
    // All five libraries: a rule about what the driver must not name can only fail if the named types are loaded.
    private static readonly ArchUnitNET.Domain.Architecture Driver = new ArchLoader()
        .LoadAssemblies(
            typeof(VirtioNetDevice).Assembly,
            typeof(VirtioNet.VhostUser.VhostUserTransport).Assembly,
            typeof(VirtioNet.Qemu.QemuMachine).Assembly,
            typeof(VirtioNet.Diagnostics.IFramePort).Assembly,
            typeof(VirtioNet.Service.TapService).Assembly)
        .Build();

    private static IObjectProvider<IType> InNamespace(string name) => Types().That().ResideInNamespaceOrBelow(name);

    [Fact]
    public void TheDriverLibraryKnowsNothingOfThePlatformsTheDiagnosticClientOrTheTool()
    {
        IArchRule rule = Types().That().ResideInAssembly(typeof(VirtioNetDevice).Assembly).Should()
            .NotDependOnAny(InNamespace("VirtioNet.Qemu"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.VhostUser"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Diagnostics"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Cli"));
        rule.Check(Driver);
    }

    [Fact]
    public void TheNetDriverNeverNamesAConcreteTransportOrTheDiscoveryLayer()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Net").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Transports.Mmio"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports.Pci"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Discovery"));
        rule.Check(Driver);
    }

    [Fact]
    public void VirtqueuesDependOnlyOnThePlatformSeamAndCore()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Virtqueues").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Net"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Discovery"));
        rule.Check(Driver);
    }

    [Fact]
    public void TheVirtioCoreKnowsNoDeviceTypeAndNoConcreteTransport()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Core").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Net"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports.Mmio"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports.Pci"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Discovery"));
        rule.Check(Driver);
    }

    [Fact]
    public void ThePlatformSeamDependsOnNothingAboveIt()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Platform").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Net"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Virtqueues"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Discovery"));
        rule.Check(Driver);
    }

    [Fact]
    public void TheDiagnosticClientKnowsTheDriverButNoPlatform()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Diagnostics").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Qemu"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.VhostUser"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Virtqueues"));
        rule.Check(Driver);
    }

    [Fact]
    public void NothingBelowTheServiceLayerKnowsIt()
    {
        IArchRule rule = Types().That().ResideInAssembly(typeof(VirtioNetDevice).Assembly)
            .Or().ResideInAssembly(typeof(VirtioNet.Qemu.QemuMachine).Assembly)
            .Or().ResideInAssembly(typeof(VirtioNet.Diagnostics.IFramePort).Assembly)
            .Or().ResideInAssembly(typeof(VirtioNet.VhostUser.VhostUserNetDevice).Assembly)
            .Should().NotDependOnAny(InNamespace("VirtioNet.Service"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Cli"));
        rule.Check(Driver);
    }

    [Fact]
    public void TheServiceLayerKnowsTheDriverButNotTheTool()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Service").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Cli"));
        rule.Check(Driver);
    }

    [Fact]
    public void TheDiscoveryLayerDoesNotReachIntoTransportsOrTheNetDriver()
    {
        IArchRule rule = Types().That().ResideInNamespaceOrBelow("VirtioNet.Discovery").Should()
            .NotDependOnAny(InNamespace("VirtioNet.Net"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Transports"))
            .AndShould().NotDependOnAny(InNamespace("VirtioNet.Virtqueues"));
        rule.Check(Driver);
    }
}
