using System.Runtime.InteropServices;

namespace VirtioNet.Platform;

/// <summary>
/// A block of memory the device can reach: its address as the CPU sees it and as the device sees it.
/// </summary>
/// <remarks>
/// The memory stays valid until the region is returned to the <see cref="IDmaAllocator"/> that made it,
/// and the device may read or write it at any time while it is posted in a queue: code that reads what
/// the device wrote goes through <see cref="Virtqueues.SharedMemory"/>, never through cached copies.
/// Whoever creates a region vouches that <see cref="Pointer"/> is valid for <see cref="Length"/> bytes.
/// </remarks>
public readonly struct DmaRegion(nint pointer, ulong deviceAddress, int length) : IEquatable<DmaRegion>
{
    /// <summary>Where the CPU (this process) sees the first byte.</summary>
    public nint Pointer { get; } = pointer;

    /// <summary>Where the device sees the first byte (a guest-physical or IO virtual address).</summary>
    public ulong DeviceAddress { get; } = deviceAddress;

    /// <summary>The length in bytes.</summary>
    public int Length { get; } = length >= 0 ? length : throw new ArgumentOutOfRangeException(nameof(length), length, "A region's length cannot be negative.");

    /// <summary>True for the default value, which describes no memory.</summary>
    public bool IsEmpty => Pointer == 0;

    /// <summary>The region as a span.</summary>
    public unsafe Span<byte> Span
    {
        // SAFETY: the allocator that made this region guarantees Pointer is valid for Length bytes until freed.
        get => Pointer == 0 ? [] : new Span<byte>((void*)Pointer, Length);
    }

    /// <summary>A sub-range of this region, with both addresses moved by <paramref name="offset"/>.</summary>
    public DmaRegion Slice(int offset, int length)
    {
        if ((uint)offset > (uint)Length || (uint)length > (uint)(Length - offset))
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Slice [{offset}, +{length}) lies outside a region of {Length} bytes.");
        }

        return new DmaRegion(Pointer + offset, DeviceAddress + (ulong)offset, length);
    }

    /// <inheritdoc />
    public bool Equals(DmaRegion other) => Pointer == other.Pointer && DeviceAddress == other.DeviceAddress && Length == other.Length;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is DmaRegion other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Pointer, DeviceAddress, Length);

    /// <inheritdoc />
    public override string ToString() => $"DMA 0x{DeviceAddress:x} +{Length}";

    /// <summary>Equality of both addresses and length.</summary>
    public static bool operator ==(DmaRegion left, DmaRegion right) => left.Equals(right);

    /// <summary>Inequality of either address or length.</summary>
    public static bool operator !=(DmaRegion left, DmaRegion right) => !left.Equals(right);
}
