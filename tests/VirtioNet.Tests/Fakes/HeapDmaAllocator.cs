using System.Runtime.InteropServices;
using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// DMA memory from the native heap for tests. Device addresses are a fake base plus an offset, unrelated to the CPU
/// pointers, so code that hands a pointer to the device (or dereferences a device address) fails at once. Every
/// allocation has guard bytes on both sides and a gap in device-address space to the next one, and the allocator
/// counts what is still live so tests can assert that nothing leaked.
/// </summary>
public sealed unsafe class HeapDmaAllocator : IDmaAllocator, IDisposable
{
    /// <summary>Device address of the first allocation: far outside any user-space pointer of this process.</summary>
    public const ulong DefaultDeviceBase = 0xD000_0000_0000_0000;

    private const byte GuardPattern = 0xA5;
    private const int MinimumGuard = 64;

    // Device-address space left unused after each allocation, so an access one past the end translates to nothing.
    private const ulong DeviceGap = 0x1000;

    private readonly List<Allocation> _live = [];
    private ulong _nextDeviceAddress;
    private int _allocationsLeft = int.MaxValue;

    /// <summary>Creates an allocator whose first device address is <paramref name="deviceBase"/>.</summary>
    public HeapDmaAllocator(ulong deviceBase = DefaultDeviceBase) => _nextDeviceAddress = deviceBase;

    /// <summary>What the allocator tells the driver about its addresses: true plays a platform with an IOMMU (§6.1).</summary>
    public bool TranslatesDeviceAddresses { get; init; }

    /// <summary>Whether the allocator vouches for hardware-device ordering (§6.1 ORDER_PLATFORM); false plays an Arm64 platform without device barriers.</summary>
    public bool OrdersAccessesForHardwareDevices { get; init; } = true;

    /// <summary>
    /// Called on every <see cref="SyncForDevice"/>, on the driver's thread: the moment the driver has written something
    /// for the device (a notification request, say) and not yet looked again; where a test plays a device that acted
    /// just before the write became visible.
    /// </summary>
    public Action<DmaRegion>? OnSyncForDevice { get; set; }

    /// <inheritdoc />
    public void SyncForDevice(DmaRegion region) => OnSyncForDevice?.Invoke(region);

    /// <summary>Allocations made and not yet freed.</summary>
    public int OutstandingAllocations => _live.Count;

    /// <summary>Bytes in allocations made and not yet freed.</summary>
    public long OutstandingBytes
    {
        get
        {
            long total = 0;
            foreach (Allocation allocation in _live)
            {
                total += allocation.Length;
            }

            return total;
        }
    }

    /// <summary>Total allocations made, freed or not.</summary>
    public int TotalAllocations { get; private set; }

    /// <summary>Makes the allocator fail with OutOfDmaMemory after <paramref name="count"/> more successful allocations.</summary>
    public void FailAfter(int count) => _allocationsLeft = count;

    /// <inheritdoc />
    public DmaRegion Allocate(int length, int alignment)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "The alignment must be a power of two.");
        }

        if (_allocationsLeft == 0)
        {
            throw new VirtioException(VirtioErrorReason.OutOfDmaMemory, $"The test allocator was told to fail (request of {length} bytes).");
        }

        _allocationsLeft--;

        // The guard is at least the alignment so that the CPU pointer is aligned like the device address.
        int guard = Math.Max(MinimumGuard, alignment);
        nuint total = (nuint)(length + (2 * guard));
        byte* raw = (byte*)NativeMemory.AlignedAlloc(total, (nuint)guard);

        // SAFETY: raw is valid for total bytes, just allocated.
        var whole = new Span<byte>(raw, (int)total);
        whole.Fill(GuardPattern);
        whole.Slice(guard, length).Clear();

        ulong deviceAddress = (_nextDeviceAddress + (ulong)alignment - 1) & ~((ulong)alignment - 1);
        _nextDeviceAddress = deviceAddress + (ulong)length + DeviceGap;
        var allocation = new Allocation((nint)raw, (nint)(raw + guard), deviceAddress, length, guard);
        _live.Add(allocation);
        TotalAllocations++;
        return new DmaRegion(allocation.Pointer, deviceAddress, length);
    }

    /// <inheritdoc />
    public void Free(DmaRegion region)
    {
        int index = _live.FindIndex(a => a.Pointer == region.Pointer && a.DeviceAddress == region.DeviceAddress);
        if (index < 0)
        {
            throw new InvalidOperationException($"Free of {region}, which is not a live allocation (double free, or a slice).");
        }

        Allocation allocation = _live[index];
        if (allocation.Length != region.Length)
        {
            throw new InvalidOperationException($"Free of {region} with a length other than the {allocation.Length} bytes allocated.");
        }

        if (!GuardsIntact(allocation))
        {
            throw new InvalidOperationException($"The guard bytes around {region} were overwritten.");
        }

        _live.RemoveAt(index);
        NativeMemory.AlignedFree((void*)allocation.Raw);
    }

    /// <summary>
    /// The CPU address of <paramref name="length"/> bytes at <paramref name="deviceAddress"/>, as an IOMMU would
    /// translate them. Throws when the range does not lie entirely inside one live allocation.
    /// </summary>
    public nint Translate(ulong deviceAddress, long length)
    {
        foreach (Allocation allocation in _live)
        {
            if (deviceAddress >= allocation.DeviceAddress
                && length >= 0
                && deviceAddress - allocation.DeviceAddress + (ulong)length <= (ulong)allocation.Length)
            {
                return allocation.Pointer + (nint)(deviceAddress - allocation.DeviceAddress);
            }
        }

        throw new InvalidOperationException($"Device access to 0x{deviceAddress:x} +{length} lies outside every live DMA allocation.");
    }

    /// <summary>The memory at a device address as a span (see <see cref="Translate"/>).</summary>
    public Span<byte> Map(ulong deviceAddress, int length)
        => new((void*)Translate(deviceAddress, length), length); // SAFETY: Translate checked the range is live.

    /// <summary>True when no guard byte of any live allocation was overwritten.</summary>
    public bool AllGuardsIntact()
    {
        foreach (Allocation allocation in _live)
        {
            if (!GuardsIntact(allocation))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A copy of every live allocation including its guard bytes, to prove later that nothing changed.</summary>
    public byte[] SnapshotAll()
    {
        var copy = new List<byte>();
        foreach (Allocation allocation in _live)
        {
            // SAFETY: the allocation is live and Raw is valid for Length + 2 × Guard bytes.
            copy.AddRange(new ReadOnlySpan<byte>((void*)allocation.Raw, allocation.Length + (2 * allocation.Guard)));
        }

        return [.. copy];
    }

    /// <summary>Frees whatever is still live (tests assert on <see cref="OutstandingAllocations"/> before this).</summary>
    public void Dispose()
    {
        foreach (Allocation allocation in _live)
        {
            NativeMemory.AlignedFree((void*)allocation.Raw);
        }

        _live.Clear();
    }

    private static bool GuardsIntact(Allocation allocation)
    {
        // SAFETY: the allocation is live; both guards lie inside the block AlignedAlloc returned.
        var before = new ReadOnlySpan<byte>((void*)allocation.Raw, allocation.Guard);
        var after = new ReadOnlySpan<byte>((void*)(allocation.Pointer + allocation.Length), allocation.Guard);
        return !before.ContainsAnyExcept(GuardPattern) && !after.ContainsAnyExcept(GuardPattern);
    }

    private readonly record struct Allocation(nint Raw, nint Pointer, ulong DeviceAddress, int Length, int Guard);
}
