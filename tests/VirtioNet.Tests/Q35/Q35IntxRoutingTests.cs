using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.Tests.Q35;

/// <summary>The q35 board's INTx wiring: device and pin to PIRQ, PIRQ to IOAPIC input.</summary>
public sealed class Q35IntxRoutingTests
{
    [Theory]
    [InlineData(1, 1, 5, 21)]   // the net device's slot: INTA → PIRQF → GSI 21 (seen in QEMU)
    [InlineData(1, 4, 4, 20)]
    [InlineData(2, 1, 6, 22)]
    [InlineData(3, 4, 6, 22)]
    [InlineData(4, 1, 4, 20)]
    [InlineData(24, 2, 5, 21)]
    [InlineData(0, 1, 4, 20)]
    public void PlugInSlotsRotateTheirPinsOverPirqEToH(int device, int pin, int pirq, int gsi)
    {
        Assert.Equal(pirq, Q35IntxRouting.PirqOf(device, pin));
        Assert.Equal(gsi, Q35IntxRouting.GsiOf(device, pin));
    }

    [Theory]
    [InlineData(31, 1, 0)]
    [InlineData(31, 3, 2)]
    [InlineData(25, 4, 3)]
    [InlineData(30, 1, 4)]
    [InlineData(30, 4, 7)]
    public void ChipsetDevicesFollowTheResetValuesOfTheirInterruptRouteRegisters(int device, int pin, int pirq)
    {
        Assert.Equal(pirq, Q35IntxRouting.PirqOf(device, pin));
    }

    [Fact]
    public void NoPlugInSlotUsesPirqAToD()
    {
        for (int device = 0; device < 25; device++)
        {
            for (int pin = 1; pin <= 4; pin++)
            {
                Assert.InRange(Q35IntxRouting.PirqOf(device, pin), 4, 7);
            }
        }
    }

    [Fact]
    public void EveryPirqHasItsOwnIoapicInputAboveTheIsaInterrupts()
    {
        int[] gsis = [.. Enumerable.Range(0, Q35Chipset.PirqCount).Select(Q35IntxRouting.GsiOfPirq)];

        Assert.Equal(Enumerable.Range(16, 8), gsis);
        Assert.All(gsis, g => Assert.InRange(g, 16, Q35Chipset.IoapicInputs - 1));
        Assert.Equal("PIRQF", Q35IntxRouting.PirqName(5));
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 5)]
    [InlineData(32, 1)]
    [InlineData(-1, 1)]
    public void ADeviceOrPinOutOfRangeIsRejected(int device, int pin)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Q35IntxRouting.PirqOf(device, pin));
    }

    [Fact]
    public void APirqBeyondHIsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Q35IntxRouting.GsiOfPirq(8));
    }
}
