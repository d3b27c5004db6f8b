using Microsoft.Win32.SafeHandles;

namespace VirtioNet.Qemu;

/// <summary>
/// The guest's RAM, mapped into this process: QEMU backs it with a file under /dev/shm opened with
/// <c>share=on</c>, and this process maps the same file MAP_SHARED, so a byte written here is the byte the
/// device reads by DMA, and the reverse, with no qtest round trip. On riscv64 <c>virt</c> RAM starts at
/// guest-physical 0x80000000, so guest-physical = <see cref="BaseAddress"/> + offset in the file.
/// </summary>
/// <remarks>
/// Both sides see the same physical pages and x86/arm hosts keep them coherent, so no cache maintenance is needed;
/// ordering between the driver's writes is still the driver's (barriers in <c>SharedMemory</c>).
/// </remarks>
public sealed class GuestRam
{
    private nint _pointer;

    private GuestRam(nint pointer, ulong baseAddress, ulong length)
    {
        _pointer = pointer;
        BaseAddress = baseAddress;
        Length = length;
    }

    /// <summary>The guest-physical address of the first byte (0x80000000 on riscv64 <c>virt</c>).</summary>
    public ulong BaseAddress { get; }

    /// <summary>The size of guest RAM in bytes.</summary>
    public ulong Length { get; }

    /// <summary>The guest-physical address one past the last byte.</summary>
    public ulong EndAddress => BaseAddress + Length;

    /// <summary>Where this process sees the first byte of guest RAM.</summary>
    /// <exception cref="ObjectDisposedException">After the machine was disposed.</exception>
    public nint Pointer
    {
        get
        {
            nint pointer = Volatile.Read(ref _pointer);
            ObjectDisposedException.ThrowIf(pointer == 0, this);
            return pointer;
        }
    }

    /// <summary>True when [<paramref name="guestPhysical"/>, +<paramref name="length"/>) lies inside guest RAM.</summary>
    public bool Contains(ulong guestPhysical, ulong length) =>
        guestPhysical >= BaseAddress
        && guestPhysical - BaseAddress <= Length
        && length <= Length - (guestPhysical - BaseAddress);

    /// <summary>Where this process sees the guest-physical address <paramref name="guestPhysical"/>, checking that <paramref name="length"/> bytes from it are RAM.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the range is not inside guest RAM.</exception>
    public nint Translate(ulong guestPhysical, ulong length)
    {
        if (!Contains(guestPhysical, length))
        {
            throw new ArgumentOutOfRangeException(
                nameof(guestPhysical),
                $"[0x{guestPhysical:x}, +{length}) is not inside guest RAM [0x{BaseAddress:x}, 0x{EndAddress:x}).");
        }

        return Pointer + (nint)(guestPhysical - BaseAddress);
    }

    /// <summary>The bytes of guest RAM at <paramref name="guestPhysical"/>, as a span over the shared mapping.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the range is not inside guest RAM.</exception>
    public unsafe Span<byte> GetSpan(ulong guestPhysical, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        nint address = Translate(guestPhysical, (ulong)length);

        // SAFETY: Translate checked that the whole range lies inside the mapping, which stays mapped until the
        // machine is disposed; using a span after that is the caller's use-after-free, as with any DmaRegion.
        return new Span<byte>((void*)address, length);
    }

    /// <summary>Maps the backing file at <paramref name="path"/>, which must be exactly <paramref name="length"/> bytes.</summary>
    internal static GuestRam Map(string path, ulong baseAddress, ulong length)
    {
        using SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        long actual = RandomAccess.GetLength(file);
        if ((ulong)actual != length)
        {
            throw new VirtioException(
                VirtioErrorReason.PlatformFailure,
                $"The guest RAM file {path} holds {actual} bytes, not the {length} QEMU was asked for.");
        }

        // The mapping keeps the file's pages alive by itself: the descriptor can be closed (and the file unlinked) at once.
        return new GuestRam(Interop.Mman.MapShared(file, length, path), baseAddress, length);
    }

    /// <summary>Removes the mapping; spans and pointers taken from it become invalid. Idempotent.</summary>
    internal void Unmap()
    {
        nint pointer = Interlocked.Exchange(ref _pointer, 0);
        if (pointer != 0)
        {
            Interop.Mman.UnmapShared(pointer, Length);
        }
    }
}
