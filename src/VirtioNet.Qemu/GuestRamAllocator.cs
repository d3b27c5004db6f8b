namespace VirtioNet.Qemu;

/// <summary>
/// A first-fit allocator of DMA memory over a range of guest RAM: the regions it hands out are slices of the
/// shared mapping (<see cref="DmaRegion.Pointer"/>) whose device address is the guest-physical address.
/// Thread-safe; used at setup time (rings, buffer pools), so a lock and a sorted free list are enough.
/// </summary>
public sealed class GuestRamAllocator : IDmaAllocator
{
    // Guards _ranges.
    private readonly Lock _lock = new();

    // The RAM the regions live in.
    private readonly GuestRam _ram;

    // Which guest-physical ranges are handed out (first fit, coalescing).
    private readonly AddressRangeAllocator _ranges;

    /// <summary>Creates an allocator over guest-physical [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="ram"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the range is empty or not inside <paramref name="ram"/>.</exception>
    public GuestRamAllocator(GuestRam ram, ulong start, ulong end)
    {
        ArgumentNullException.ThrowIfNull(ram);
        if (end <= start || !ram.Contains(start, end - start))
        {
            throw new ArgumentOutOfRangeException(
                nameof(start),
                $"[0x{start:x}, 0x{end:x}) is empty or not inside guest RAM [0x{ram.BaseAddress:x}, 0x{ram.EndAddress:x}).");
        }

        _ram = ram;
        Start = start;
        End = end;
        _ranges = new AddressRangeAllocator(start, end - start);
    }

    /// <summary>The first guest-physical address this allocator hands out.</summary>
    public ulong Start { get; }

    /// <summary>The guest-physical address one past the last byte this allocator hands out.</summary>
    public ulong End { get; }

    /// <summary>The bytes not handed out at the moment (possibly fragmented).</summary>
    public ulong FreeBytes
    {
        get
        {
            lock (_lock)
            {
                return _ranges.FreeBytes;
            }
        }
    }

    /// <inheritdoc />
    public DmaRegion Allocate(int length, int alignment)
    {
        ulong address;
        lock (_lock)
        {
            address = _ranges.TakeForDma(length, alignment, "guest RAM");
        }

        var region = new DmaRegion(_ram.Translate(address, (ulong)length), address, length);

        // The contract promises zeroed memory; blocks come back dirty from Free, so clear here rather than there.
        region.Span.Clear();
        return region;
    }

    /// <inheritdoc />
    public void Free(DmaRegion region)
    {
        lock (_lock)
        {
            if (!_ranges.IsTaken(region.DeviceAddress, (ulong)region.Length)
                || region.Pointer != _ram.Translate(region.DeviceAddress, (ulong)region.Length))
            {
                throw new ArgumentException($"{region} was not allocated here, or was freed already.", nameof(region));
            }

            _ranges.TryReturn(region.DeviceAddress, (ulong)region.Length);
        }
    }
}
