namespace VirtioNet.VhostUser;

/// <summary>
/// DMA memory for a vhost-user backend: one memfd-backed region shared with the backend (sent in SET_MEM_TABLE),
/// handed out first-fit. Thread-safe; used at setup time (rings, buffer pools), so a lock and a sorted free list are enough.
/// </summary>
/// <remarks>
/// <para>
/// Addresses. vhost-user names memory twice: ring addresses in SET_VRING_ADDR are the frontend's user (virtual)
/// addresses, and descriptor addresses are "guest" addresses; each region of the memory table maps both onto the same
/// bytes (vhost-user.rst, "Memory access"). This allocator announces the region with guest address = user address, as
/// QEMU effectively does for a process with no guest and as DPDK's virtio-user does: a <see cref="DmaRegion"/>'s
/// <see cref="DmaRegion.DeviceAddress"/> is then its <see cref="DmaRegion.Pointer"/>, one number means the same byte on
/// both paths, and a descriptor address outside the region is refused by the backend's translation instead of landing
/// somewhere else. A chosen IOVA base (say 0x1_0000_0000) would work the same way; it buys nothing without an IOMMU.
/// </para>
/// <para>
/// The memory is shared, not copied: the backend sees every write at once, and may write any byte of the region.
/// Dispose the allocator after the transport (or after the backend went away); the backend's own mapping lives until
/// the backend lets go of it.
/// </para>
/// </remarks>
public sealed class VhostUserDmaAllocator : IDmaAllocator, IDeviceMemory, IDisposable
{
    /// <summary>The page size the region is sized in; memfd pages are 4 KiB.</summary>
    public const int PageSize = 4096;

    /// <summary>Default size: room for a few queue pairs of 1024 descriptors and their 2 KiB buffers.</summary>
    public const long DefaultSize = 32L << 20;

    // Guards _ranges and _disposed.
    private readonly Lock _lock = new();

    // The memfd and its mapping in this process.
    private readonly SharedMemoryFile _memory;

    // Which parts of the region are handed out (first fit, coalescing); device addresses are user addresses.
    private readonly AddressRangeAllocator _ranges;

    // Set once Dispose has unmapped the memory.
    private bool _disposed;

    /// <summary>Creates a memfd of <paramref name="size"/> bytes (rounded up to a page) and maps it shared.</summary>
    /// <param name="size">The region's size; at least one page and at most 1 TiB.</param>
    /// <param name="name">The memfd's name, visible in /proc/PID/maps of both processes (for debugging).</param>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> when the kernel refuses.</exception>
    public VhostUserDmaAllocator(long size = DefaultSize, string name = "virtionet-vhost-user")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, PageSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, 1L << 40);
        ArgumentException.ThrowIfNullOrEmpty(name);
        long length = (size + PageSize - 1) & ~(long)(PageSize - 1);
        _memory = SharedMemoryFile.Create(name, length);
        _ranges = new AddressRangeAllocator(BaseAddress, (ulong)length);
    }

    /// <summary>The first byte of the region: its user address in this process, and its guest address for the backend.</summary>
    public ulong BaseAddress => (ulong)_memory.Address;

    /// <summary>The region's size in bytes.</summary>
    public long Size => _memory.Length;

    /// <summary>The bytes not handed out at the moment (possibly fragmented).</summary>
    public long FreeBytes
    {
        get
        {
            lock (_lock)
            {
                return (long)_ranges.FreeBytes;
            }
        }
    }

    /// <summary>How many regions are handed out and not yet freed (a leak shows here).</summary>
    public int AllocatedRegions
    {
        get
        {
            lock (_lock)
            {
                return _ranges.TakenBlocks;
            }
        }
    }

    /// <summary>The memfd, for SET_MEM_TABLE.</summary>
    internal FileDescriptor MemoryDescriptor => _memory.Descriptor;

    /// <inheritdoc />
    public DmaRegion Allocate(int length, int alignment)
    {
        ulong address;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            address = _ranges.TakeForDma(length, alignment, "the vhost-user region");
        }

        // Identity: the device address is the user address (see the remarks).
        var region = new DmaRegion((nint)address, address, length);

        // The contract promises zeroed memory; blocks come back dirty from Free, so clear here rather than there.
        region.Span.Clear();
        return region;
    }

    /// <inheritdoc />
    public void Free(DmaRegion region)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                // The whole mapping is gone already; nothing is left to return the block to.
                return;
            }

            if ((ulong)region.Pointer != region.DeviceAddress || !_ranges.TryReturn(region.DeviceAddress, (ulong)region.Length))
            {
                throw new ArgumentException($"{region} was not allocated here, or was freed already.", nameof(region));
            }
        }
    }

    /// <summary>
    /// The user address of [<paramref name="deviceAddress"/>, +<paramref name="length"/>) for SET_VRING_ADDR, or false
    /// when the range is not inside the region (the backend could not translate it either).
    /// </summary>
    internal bool TryGetUserAddress(ulong deviceAddress, ulong length, out ulong userAddress)
    {
        userAddress = deviceAddress;
        ulong end = BaseAddress + (ulong)Size;
        return deviceAddress >= BaseAddress && deviceAddress <= end && length <= end - deviceAddress;
    }

    /// <summary>
    /// The region as the frontend's device side sees it (the control queue it serves): device addresses are the mapped
    /// user addresses, and any range inside the region is reachable.
    /// </summary>
    bool IDeviceMemory.TryTranslate(ulong deviceAddress, ulong length, out nint address)
    {
        bool inside = TryGetUserAddress(deviceAddress, length, out ulong user);
        address = inside ? (nint)user : 0;
        return inside;
    }

    /// <summary>Unmaps the region and closes the memfd. Regions still handed out become invalid.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _ranges.Clear();
        }

        _memory.Dispose();
    }
}
