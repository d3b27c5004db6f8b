using System.Runtime.InteropServices;
using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// DMA memory from the native heap for tests. Device addresses are a fake base plus an offset, unrelated to the CPU
/// pointers, so code that hands a pointer to the device (or dereferences a device address) fails at once. Every
/// allocation has guard bytes on both sides and a gap in device-address space to the next one, and the allocator
/// counts what is still live so tests can assert that nothing leaked.
/// </summary>
/// <remarks>
/// Made with a separate device view (see <see cref="NonCoherentDmaAllocator"/>), every allocation has a second copy that
/// <see cref="Translate"/> and <see cref="Map"/> hand to the software devices, while <see cref="DmaRegion.Pointer"/> is
/// the CPU's copy; only <see cref="CopyToDevice"/> and <see cref="CopyToCpu"/> move bytes between them.
/// </remarks>
public unsafe class HeapDmaAllocator : IDmaAllocator, IDeviceMemory, IDisposable
{
    /// <summary>Device address of the first allocation: far outside any user-space pointer of this process.</summary>
    public const ulong DefaultDeviceBase = 0xD000_0000_0000_0000;

    private const byte GuardPattern = 0xA5;
    private const int MinimumGuard = 64;

    // Device-address space left unused after each allocation, so an access one past the end translates to nothing.
    private const ulong DeviceGap = 0x1000;

    private readonly List<Allocation> _live = [];
    private readonly bool _separateDeviceView;
    private ulong _nextDeviceAddress;
    private int _allocationsLeft = int.MaxValue;

    /// <summary>Creates an allocator whose first device address is <paramref name="deviceBase"/>.</summary>
    public HeapDmaAllocator(ulong deviceBase = DefaultDeviceBase)
        : this(deviceBase, separateDeviceView: false)
    {
    }

    /// <summary>
    /// Creates an allocator; with <paramref name="separateDeviceView"/> every allocation gets a device copy and a record
    /// of its contents as of the last sync, apart from the CPU's copy.
    /// </summary>
    protected HeapDmaAllocator(ulong deviceBase, bool separateDeviceView)
    {
        _nextDeviceAddress = deviceBase;
        _separateDeviceView = separateDeviceView;
    }

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
    public virtual void SyncForDevice(DmaRegion region) => OnSyncForDevice?.Invoke(region);

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
        nint deviceView = (nint)(raw + guard);
        nint synced = 0;
        if (_separateDeviceView)
        {
            // The device's copy has guards of its own; the record of the last sync needs none (only the allocator writes it).
            byte* deviceRaw = (byte*)NativeMemory.AlignedAlloc(total, (nuint)guard);

            // SAFETY: deviceRaw is valid for total bytes, just allocated.
            var deviceWhole = new Span<byte>(deviceRaw, (int)total);
            deviceWhole.Fill(GuardPattern);
            deviceWhole.Slice(guard, length).Clear();
            deviceView = (nint)(deviceRaw + guard);
            synced = (nint)NativeMemory.AllocZeroed((nuint)length);
        }

        var allocation = new Allocation((nint)raw, (nint)(raw + guard), deviceAddress, length, guard, deviceView, synced);
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
        Release(allocation);
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
                return allocation.DeviceView + (nint)(deviceAddress - allocation.DeviceAddress);
            }
        }

        throw new InvalidOperationException($"Device access to 0x{deviceAddress:x} +{length} lies outside every live DMA allocation.");
    }

    /// <summary>As <see cref="Translate"/>, for the library's device-side rings: false instead of throwing.</summary>
    public bool TryTranslate(ulong deviceAddress, ulong length, out nint address)
    {
        foreach (Allocation allocation in _live)
        {
            if (deviceAddress >= allocation.DeviceAddress
                && length <= (ulong)allocation.Length
                && deviceAddress - allocation.DeviceAddress <= (ulong)allocation.Length - length)
            {
                address = allocation.DeviceView + (nint)(deviceAddress - allocation.DeviceAddress);
                return true;
            }
        }

        address = 0;
        return false;
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
            Release(allocation);
        }

        _live.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Copies the CPU's view of <paramref name="region"/> (an allocation or a slice of one) into the device's view, as
    /// a cache clean writes dirty lines back. Returns how many of the bytes overwritten held a value the device had
    /// written since the range was last synced that differs from the CPU's (device writes the clean destroyed).
    /// </summary>
    /// <param name="region">The range to copy.</param>
    /// <param name="betweenLines">
    /// When given, the copy goes line by line (64 bytes, counted from the allocation's start), lowest first, and this
    /// runs between two lines.
    /// </param>
    protected int CopyToDevice(DmaRegion region, Action? betweenLines = null)
    {
        (Allocation allocation, int offset) = Find(region);

        // SAFETY: Find checked that the range lies inside the live allocation, whose three copies have Length bytes.
        var cpu = new Span<byte>((void*)(allocation.Pointer + offset), region.Length);
        var device = new Span<byte>((void*)(allocation.DeviceView + offset), region.Length);
        var synced = new Span<byte>((void*)(allocation.Synced + offset), region.Length);
        int destroyed = 0;
        for (int i = 0; i < cpu.Length; i++)
        {
            if (device[i] != synced[i] && device[i] != cpu[i])
            {
                destroyed++;
            }
        }

        cpu.CopyTo(synced);
        if (betweenLines is null)
        {
            cpu.CopyTo(device);
            return destroyed;
        }

        const int line = 64;
        int done = 0;
        while (done < cpu.Length)
        {
            int part = Math.Min(line - ((offset + done) % line), cpu.Length - done);
            cpu.Slice(done, part).CopyTo(device[done..]);
            done += part;
            if (done < cpu.Length)
            {
                betweenLines();
            }
        }

        return destroyed;
    }

    /// <summary>
    /// Copies the device's view of <paramref name="region"/> into the CPU's view, as a cache invalidate makes the CPU
    /// read memory again. Returns how many of the bytes overwritten held a value the CPU had written since the range
    /// was last synced that differs from the device's (CPU writes the invalidate discarded).
    /// </summary>
    protected int CopyToCpu(DmaRegion region)
    {
        (Allocation allocation, int offset) = Find(region);

        // SAFETY: as in CopyToDevice.
        var cpu = new Span<byte>((void*)(allocation.Pointer + offset), region.Length);
        var device = new Span<byte>((void*)(allocation.DeviceView + offset), region.Length);
        var synced = new Span<byte>((void*)(allocation.Synced + offset), region.Length);
        int discarded = 0;
        for (int i = 0; i < cpu.Length; i++)
        {
            if (cpu[i] != synced[i] && cpu[i] != device[i])
            {
                discarded++;
            }
        }

        // One read of the device's copy: a device thread may be writing it meanwhile (only syncs are under the lock), and
        // two reads could then leave the record of the last sync different from what the CPU got, which a later
        // invalidate would count as a CPU write it discarded.
        device.CopyTo(cpu);
        cpu.CopyTo(synced);
        return discarded;
    }

    // The live allocation holding region (by CPU pointer, checked against the device address too) and its offset.
    private (Allocation Allocation, int Offset) Find(DmaRegion region)
    {
        foreach (Allocation allocation in _live)
        {
            long offset = region.Pointer - allocation.Pointer;
            if (offset >= 0 && offset + region.Length <= allocation.Length)
            {
                if (region.DeviceAddress != allocation.DeviceAddress + (ulong)offset)
                {
                    throw new InvalidOperationException($"Sync of {region}, whose device address does not match its CPU pointer.");
                }

                return (allocation, (int)offset);
            }
        }

        throw new InvalidOperationException($"Sync of {region}, which lies outside every live DMA allocation.");
    }

    private static void Release(Allocation allocation)
    {
        NativeMemory.AlignedFree((void*)allocation.Raw);
        if (allocation.DeviceView != allocation.Pointer)
        {
            NativeMemory.AlignedFree((void*)(allocation.DeviceView - allocation.Guard));
            NativeMemory.Free((void*)allocation.Synced);
        }
    }

    private static bool GuardsIntact(Allocation allocation)
    {
        // SAFETY: the allocation is live; both guards lie inside the block AlignedAlloc returned.
        var before = new ReadOnlySpan<byte>((void*)allocation.Raw, allocation.Guard);
        var after = new ReadOnlySpan<byte>((void*)(allocation.Pointer + allocation.Length), allocation.Guard);
        bool intact = !before.ContainsAnyExcept(GuardPattern) && !after.ContainsAnyExcept(GuardPattern);
        if (allocation.DeviceView != allocation.Pointer)
        {
            // SAFETY: the device copy has guards of the same size around it.
            var deviceBefore = new ReadOnlySpan<byte>((void*)(allocation.DeviceView - allocation.Guard), allocation.Guard);
            var deviceAfter = new ReadOnlySpan<byte>((void*)(allocation.DeviceView + allocation.Length), allocation.Guard);
            intact &= !deviceBefore.ContainsAnyExcept(GuardPattern) && !deviceAfter.ContainsAnyExcept(GuardPattern);
        }

        return intact;
    }

    // DeviceView is Pointer for a coherent allocation; Synced (the contents as of the last sync) is 0 then.
    private readonly record struct Allocation(nint Raw, nint Pointer, ulong DeviceAddress, int Length, int Guard, nint DeviceView, nint Synced);
}
