using VirtioNet.Discovery;
using VirtioNet.Discovery.Pci;
using Xunit;

namespace VirtioNet.Tests.Discovery;

/// <summary>The riscv64 virt PCIe host bridge read from QEMU's own device tree: ECAM, windows, and INTx routing with the swizzle.</summary>
public sealed class PciHostBridgeTests
{
    private static PciHostBridge VirtBridge()
    {
        FlattenedDeviceTree tree = FlattenedDeviceTree.Parse(DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt));
        IReadOnlyList<PciHostBridge> bridges = PciHostBridgeDiscovery.Find(tree);
        return Assert.Single(bridges);
    }

    [Fact]
    public void TheEcamWindowAndBusRangeComeFromRegAndBusRange()
    {
        PciHostBridge host = VirtBridge();

        Assert.Equal("/soc/pci@30000000", host.NodePath);
        Assert.Equal(0x3000_0000UL, host.EcamBase);
        Assert.Equal(0x1000_0000UL, host.EcamSize);
        Assert.Equal(0, host.BusStart);
        Assert.Equal(255, host.BusEnd);
        Assert.Equal(0x3000_8000UL, host.GetConfigAddress(new PciFunctionAddress(0, 1, 0)));
        Assert.Equal(0x3010_0000UL + (2 << 15) + (3 << 12), host.GetConfigAddress(new PciFunctionAddress(1, 2, 3)));
    }

    [Fact]
    public void TheIoAndMemoryWindowsComeFromRangesWithThreeAddressCells()
    {
        PciHostBridge host = VirtBridge();

        Assert.Equal(new PciWindow(PciAddressSpace.Io, false, 0, 0x0300_0000, 0x1_0000), host.FindWindow(PciAddressSpace.Io));
        Assert.Equal(new PciWindow(PciAddressSpace.Memory32, false, 0x4000_0000, 0x4000_0000, 0x4000_0000), host.FindWindow(PciAddressSpace.Memory32));
        Assert.Equal(new PciWindow(PciAddressSpace.Memory64, false, 0x4_0000_0000, 0x4_0000_0000, 0x4_0000_0000), host.FindWindow(PciAddressSpace.Memory64));
        Assert.Equal(0x0300_1000UL, host.FindWindow(PciAddressSpace.Io)!.ToCpuAddress(0x1000));
    }

    [Theory]
    [InlineData(0, 1, 32)]   // slot 0: INTA → PLIC 0x20
    [InlineData(1, 1, 33)]   // 00:01.0 INTA → 0x21, the line QEMU raised (docs/FEATURES.md, PciInterruptTests)
    [InlineData(1, 4, 32)]   // slot 1: INTD wraps round to 0x20
    [InlineData(2, 1, 34)]
    [InlineData(3, 2, 32)]
    [InlineData(5, 1, 33)]   // the mask keeps only device bits 1:0: slot 5 routes as slot 1
    [InlineData(31, 3, 33)]
    public void InterruptMapRoutesEachSlotAndPinToItsPlicLine(int device, int pin, uint line)
    {
        PciHostBridge host = VirtBridge();

        Assert.True(host.TryRouteIntx(new PciFunctionAddress(0, (byte)device, 0), pin, out PciIntxRoute? route));

        Assert.Equal(line, route!.Line);
        Assert.Equal("/soc/plic@c000000", route.ControllerPath);
    }

    [Fact]
    public void ThePlicLineFollowsTheStandardSwizzleOfTheSlotNumber()
    {
        PciHostBridge host = VirtBridge();
        for (int device = 0; device < 32; device++)
        {
            for (int pin = 1; pin <= 4; pin++)
            {
                Assert.True(host.TryRouteIntx(new PciFunctionAddress(0, (byte)device, 0), pin, out PciIntxRoute? route));
                Assert.Equal((uint)(0x20 + PciHostBridge.SwizzlePin(device, pin) - 1), route!.Line);
            }
        }
    }

    [Theory]
    [InlineData(0, 1, 1)]
    [InlineData(1, 1, 2)]
    [InlineData(3, 2, 1)]
    [InlineData(6, 4, 2)]
    public void TheBridgeSwizzleRotatesThePinByTheDeviceNumber(int device, int pin, int expected) =>
        Assert.Equal(expected, PciHostBridge.SwizzlePin(device, pin));

    [Fact]
    public void NoPinOrAnInvalidPinHasNoRoute()
    {
        PciHostBridge host = VirtBridge();

        Assert.False(host.TryRouteIntx(new PciFunctionAddress(0, 1, 0), 0, out _));
        Assert.False(host.TryRouteIntx(new PciFunctionAddress(0, 1, 0), 5, out _));
    }

    [Fact]
    public void ABusOutsideTheRangeHasNoConfigurationAddress()
    {
        PciHostBridge host = new("/pci", 0x3000_0000, 0x20_0000, 0, 1, [], 0, 0, []);

        Assert.Throws<ArgumentOutOfRangeException>(() => host.GetConfigAddress(new PciFunctionAddress(2, 0, 0)));
    }

    [Fact]
    public void FunctionAddressesPrintAndParseAsLspciWritesThem()
    {
        Assert.Equal("00:1f.7", new PciFunctionAddress(0, 31, 7).ToString());
        Assert.True(PciFunctionAddress.TryParse("00:01.0", out PciFunctionAddress address));
        Assert.Equal(new PciFunctionAddress(0, 1, 0), address);
        Assert.False(PciFunctionAddress.TryParse("00:20.0", out _));
        Assert.False(PciFunctionAddress.TryParse("0001.0", out _));
    }
}
