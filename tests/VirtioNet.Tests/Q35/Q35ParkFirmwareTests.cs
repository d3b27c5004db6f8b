using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.Tests.Q35;

/// <summary>The park firmware: a BIOS image QEMU accepts, whose reset vector halts the CPU and jumps back to the halt.</summary>
public sealed class Q35ParkFirmwareTests
{
    [Fact]
    public void TheImageIsAWholeNumberOf64KiBlocks()
    {
        byte[] image = Q35ParkFirmware.CreateImage();

        Assert.NotEmpty(image);
        Assert.Equal(0, image.Length % (64 * 1024));
    }

    [Fact]
    public void TheResetVectorIsTheLastSixteenBytesAndHoldsHltThenAJumpBackToIt()
    {
        byte[] image = Q35ParkFirmware.CreateImage();

        // The image ends at 4 GiB: the reset vector's offset is its distance from the top.
        Assert.Equal(Q35ParkFirmware.ResetVectorOffset, image.Length - (int)(0x1_0000_0000UL - Q35ParkFirmware.ResetVector));
        int at = Q35ParkFirmware.ResetVectorOffset;
        Assert.Equal(0xf4, image[at]);                      // hlt
        Assert.Equal(0xeb, image[at + 1]);                  // jmp rel8
        int target = at + 3 + (sbyte)image[at + 2];         // rel8 counts from the next instruction
        Assert.Equal(at, target);
    }

    [Fact]
    public void EverythingButTheParkProgramIsZero()
    {
        byte[] image = Q35ParkFirmware.CreateImage();

        Assert.Equal(3, image.Count(b => b != 0));
    }
}
