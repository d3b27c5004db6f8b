using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace VirtioNet.Virtqueues;

/// <summary>
/// The one set of primitives through which the driver touches memory the device also reads or writes
/// (rings, headers). Every access is little-endian (virtio 1.x §2.4; legacy devices on a little-endian guest too)
/// and volatile, so the compiler neither caches nor tears it.
/// </summary>
/// <remarks>
/// Ordering follows the .NET memory model for volatile accesses: every read here is an acquire (no later load or
/// store moves before it) and every write a release (no earlier load or store moves after it). That is exactly what
/// publishing needs ("descriptors before avail.idx": write avail.idx last) and what consuming needs ("used.idx before the
/// entries it covers": read used.idx first), so those orderings cost no fence; each call site says which it relies on.
/// Only a store that must be visible before a later load (avail.idx, then avail_event) needs <see cref="FullBarrier"/>.
/// This covers devices that are CPUs in the same coherence domain (QEMU's threads, a vhost-user backend); a platform
/// whose DMA masters sit outside it adds what it needs in <see cref="Platform.IDmaAllocator.SyncForDevice"/>.
/// </remarks>
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
}
