using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace VirtioNet.Virtqueues;

/// <summary>
/// The one set of primitives through which the driver touches memory the device also reads or writes
/// (rings, headers). Every access is little-endian (virtio 1.x §2.4; legacy devices on a little-endian guest too)
/// and volatile, so the compiler neither caches nor tears it; ordering between accesses is the caller's,
/// through the barriers below, each call site saying what must be visible before what.
/// </summary>
public static unsafe class SharedMemory
{
    /// <summary>Reads a little-endian 16-bit value at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ReadUInt16(nint address)
    {
        // SAFETY: callers pass addresses inside a DmaRegion they own, computed from validated indexes.
        ushort raw = Volatile.Read(ref *(ushort*)address);
        return BitConverter.IsLittleEndian ? raw : BinaryPrimitives.ReverseEndianness(raw);
    }

    /// <summary>Reads a little-endian 32-bit value at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ReadUInt32(nint address)
    {
        // SAFETY: as in ReadUInt16.
        uint raw = Volatile.Read(ref *(uint*)address);
        return BitConverter.IsLittleEndian ? raw : BinaryPrimitives.ReverseEndianness(raw);
    }

    /// <summary>Reads a little-endian 64-bit value at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReadUInt64(nint address)
    {
        // SAFETY: as in ReadUInt16.
        ulong raw = Volatile.Read(ref *(ulong*)address);
        return BitConverter.IsLittleEndian ? raw : BinaryPrimitives.ReverseEndianness(raw);
    }

    /// <summary>Writes a little-endian 16-bit value at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteUInt16(nint address, ushort value)
    {
        // SAFETY: as in ReadUInt16.
        Volatile.Write(ref *(ushort*)address, BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value));
    }

    /// <summary>Writes a little-endian 32-bit value at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteUInt32(nint address, uint value)
    {
        // SAFETY: as in ReadUInt16.
        Volatile.Write(ref *(uint*)address, BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value));
    }

    /// <summary>Writes a little-endian 64-bit value at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteUInt64(nint address, ulong value)
    {
        // SAFETY: as in ReadUInt16.
        Volatile.Write(ref *(ulong*)address, BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value));
    }

    /// <summary>
    /// Full barrier: every load and store before it is globally visible before any after it.
    /// Needed where a store must be seen before a later load (publishing avail.idx, then reading used_event).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FullBarrier() => Interlocked.MemoryBarrier();

    /// <summary>
    /// Store barrier: stores before it are visible before stores after it (descriptors before avail.idx).
    /// .NET offers no cheaper primitive that is correct on every architecture, so this is a full barrier.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreBarrier() => Interlocked.MemoryBarrier();

    /// <summary>
    /// Load barrier: loads after it see at least what was visible when the load before it ran
    /// (used.idx before the used entries it covers). A full barrier, for the reason given at <see cref="StoreBarrier"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadBarrier() => Interlocked.MemoryBarrier();
}
