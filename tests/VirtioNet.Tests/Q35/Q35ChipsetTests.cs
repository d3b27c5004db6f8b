using VirtioNet.Core;
using VirtioNet.Discovery.Pci;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.Tests.Q35;

/// <summary>The q35 chipset facts: configuration mechanism #1 addresses, PCIEXBAR, the windows and BAR placement in them.</summary>
public sealed class Q35ChipsetTests
{
    [Fact]
    public void ConfigAddressOfThePirqRoutingRegistersOfTheLpcBridge()
    {
        Assert.Equal(0x8000_f860u, Q35Chipset.ConfigAddress(Q35Chipset.LpcAddress, Q35Chipset.LpcPirqARout));
        Assert.Equal(0x8000_f868u, Q35Chipset.ConfigAddress(Q35Chipset.LpcAddress, Q35Chipset.LpcPirqERout));
    }

    [Fact]
    public void ConfigAddressDropsTheByteWithinTheDword()
    {
        var function = new PciFunctionAddress(2, 3, 1);

        Assert.Equal(0x8002_1900u | 0x3c, Q35Chipset.ConfigAddress(function, 0x3d));
        Assert.Equal(Q35Chipset.ConfigAddress(function, 0x3c), Q35Chipset.ConfigAddress(function, 0x3f));
    }

    [Fact]
    public void ConfigAddressBeyondTheFirst256BytesIsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Q35Chipset.ConfigAddress(Q35Chipset.MchAddress, 0x100));
    }

    [Fact]
    public void PciexbarEnables256BusesAtTheEcamBase()
    {
        Assert.Equal(0xb000_0001UL, Q35Chipset.PciexbarValue);
        Assert.Equal(0UL, Q35Chipset.EcamBase % Q35Chipset.EcamSize);   // the 256 MiB length needs a 256 MiB aligned base
    }

    [Fact]
    public void TheHostBridgeReachesEveryBusAndItsWindowsAvoidEcamAndTheApics()
    {
        PciHostBridge host = Q35Chipset.CreateHostBridge();

        Assert.Equal(0xb00f_8000UL, host.GetConfigAddress(new PciFunctionAddress(0, 0x1f, 0)));
        Assert.Equal(0xbff0_0000UL, host.GetConfigAddress(new PciFunctionAddress(255, 0, 0)));
        PciWindow mem = host.FindWindow(PciAddressSpace.Memory32)!;
        Assert.True(mem.CpuAddress >= Q35Chipset.EcamBase + Q35Chipset.EcamSize);
        Assert.True(mem.CpuAddress + mem.Size <= Q35Chipset.IoapicBase);
        Assert.Null(host.FindWindow(PciAddressSpace.Memory64));
        PciWindow io = host.FindWindow(PciAddressSpace.Io)!;
        Assert.Equal(io.PciAddress, io.CpuAddress);
        Assert.True(io.CpuAddress + io.Size <= QtestPortWindow.PortSpaceSize);
    }

    [Fact]
    public void ATransitionalVirtioFunctionIsPlacedBelowFourGibibytesWithItsIoBarInPortSpace()
    {
        PciHostBridge host = Q35Chipset.CreateHostBridge();
        var net = new PciFunction(
            new PciFunctionAddress(0, 1, 0), host.GetConfigAddress(new PciFunctionAddress(0, 1, 0)), 0x1af4, 0x1000, 0x020000, 0, 0, 1, 1,
            [new PciBar(0, PciAddressSpace.Io, false, 0x20), new PciBar(1, PciAddressSpace.Memory32, false, 0x1000), new PciBar(4, PciAddressSpace.Memory64, true, 0x4000)]);

        IReadOnlyList<PciBarAssignment> plan = PciEnumerator.PlanAssignments(host, [net]);

        PciBar io = plan.Single(a => a.Bar.Index == 0).Bar;
        Assert.InRange(io.CpuAddress, Q35Chipset.IoWindowBase, Q35Chipset.IoWindowBase + Q35Chipset.IoWindowSize - io.Size);
        foreach (PciBar bar in plan.Select(a => a.Bar).Where(b => b.Space != PciAddressSpace.Io))
        {
            Assert.InRange(bar.CpuAddress, Q35Chipset.Memory32WindowBase, Q35Chipset.IoapicBase - bar.Size);
            Assert.Equal(0UL, bar.CpuAddress % bar.Size);
        }
    }

    [Fact]
    public void ABarLargerThanTheHoleIsAClearErrorAndNothingIsPlaced()
    {
        PciHostBridge host = Q35Chipset.CreateHostBridge();
        var huge = new PciFunction(
            new PciFunctionAddress(0, 2, 0), host.GetConfigAddress(new PciFunctionAddress(0, 2, 0)), 0x1234, 0x5678, 0x030000, 0, 0, 0, 0,
            [new PciBar(0, PciAddressSpace.Memory32, false, 0x4000_0000)]);

        VirtioException e = Assert.Throws<VirtioException>(() => PciEnumerator.PlanAssignments(host, [huge]));

        Assert.Equal(VirtioErrorReason.InvalidConfiguration, e.Reason);
        Assert.Contains("00:02.0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DmaMemoryStartsAboveTheFirstMebibyte()
    {
        Assert.True(Q35Chipset.DmaBase >= 0x10_0000);
    }
}
