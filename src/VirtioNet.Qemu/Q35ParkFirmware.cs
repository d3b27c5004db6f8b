namespace VirtioNet.Qemu;

/// <summary>
/// The whole firmware of the q35 machine: a 64 KiB image given to QEMU with <c>-bios</c> whose reset vector holds
/// <c>hlt; jmp $-1</c> (<c>f4 eb fd</c>), so the CPU halts at its first instruction and stays there. Built in memory
/// at start-up, never downloaded; the rest of the image is zero.
/// </summary>
/// <remarks>
/// An x86 CPU leaves reset in real mode at CS:IP F000:FFF0, the linear address 0xFFFFFFF0, which QEMU maps to the last
/// 16 bytes of the BIOS image (QEMU rejects images that are not a multiple of 64 KiB). Interrupts are disabled at reset
/// (IF = 0), so no interrupt ends the <c>hlt</c>; should something (an NMI, SMI) wake it, the short jump back (rel8 =
/// -3) halts it again. With the CPU parked, this process plays the guest: no SeaBIOS runs, nothing is written to RAM,
/// and no PCI device is touched except by the platform. <c>-S</c> is no alternative: with the VM stopped, virtio-net
/// neither sends nor receives (docs/DESIGN.md).
/// </remarks>
public static class Q35ParkFirmware
{
    /// <summary>The image's size: QEMU's minimum for <c>-bios</c>.</summary>
    public const int ImageSize = 64 * 1024;

    /// <summary>The guest-physical address the CPU starts at: the reset vector.</summary>
    public const ulong ResetVector = 0xffff_fff0;

    /// <summary>Where the reset vector lies in the image: its last 16 bytes.</summary>
    public const int ResetVectorOffset = ImageSize - 16;

    /// <summary>The park program: <c>hlt</c> (f4), then <c>jmp short</c> (eb) back 3 bytes (fd) to the <c>hlt</c>.</summary>
    public static ReadOnlySpan<byte> ParkProgram => [0xf4, 0xeb, 0xfd];

    /// <summary>The BIOS image: zeros with <see cref="ParkProgram"/> at <see cref="ResetVectorOffset"/>.</summary>
    public static byte[] CreateImage()
    {
        var image = new byte[ImageSize];
        ParkProgram.CopyTo(image.AsSpan(ResetVectorOffset));
        return image;
    }
}
