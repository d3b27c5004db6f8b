using System.Numerics;
using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Qemu;

/// <summary>
/// A first-fit allocator of DMA memory over a range of guest RAM: the regions it hands out are slices of the
/// shared mapping (<see cref="DmaRegion.Pointer"/>) whose device address is the guest-physical address.
/// Thread-safe; used at setup time (rings, buffer pools), so a lock and a sorted free list are enough.
/// </summary>
public sealed class GuestRamAllocator : IDmaAllocator
{
    // Guards _free and _allocated.
    private readonly Lock _lock = new();

    // The RAM the regions live in.
    private readonly GuestRam _ram;

    // Free blocks, sorted by start address and never adjacent (Free coalesces).
    private readonly List<Block> _free = [];

    // Regions handed out, by device address, with their length: Free accepts only these.
    private readonly Dictionary<ulong, int> _allocated = [];

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
        _free.Add(new Block(start, end - start));
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
                return SumFree();
            }
        }
    }

    /// <inheritdoc />
    public DmaRegion Allocate(int length, int alignment)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(alignment);
        if (!BitOperations.IsPow2(alignment))
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), $"Alignment {alignment} is not a power of two.");
        }

        ulong address;
        lock (_lock)
        {
            address = Take((ulong)length, (ulong)alignment);
            _allocated.Add(address, length);
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
            if (!_allocated.TryGetValue(region.DeviceAddress, out int length)
                || length != region.Length
                || region.Pointer != _ram.Translate(region.DeviceAddress, (ulong)length))
            {
                throw new ArgumentException($"{region} was not allocated here, or was freed already.", nameof(region));
            }

            _allocated.Remove(region.DeviceAddress);
            Return(new Block(region.DeviceAddress, (ulong)length));
        }
    }

    // First fit: the lowest block that holds an aligned start and the length; the alignment padding and the tail stay free.
    private ulong Take(ulong length, ulong alignment)
    {
        for (int i = 0; i < _free.Count; i++)
        {
            Block block = _free[i];
            ulong aligned = (block.Start + alignment - 1) & ~(alignment - 1);
            if (aligned < block.Start || aligned - block.Start > block.Length || length > block.End - aligned)
            {
                continue;
            }

            _free.RemoveAt(i);
            if (aligned + length < block.End)
            {
                _free.Insert(i, new Block(aligned + length, block.End - (aligned + length)));
            }

            if (aligned > block.Start)
            {
                _free.Insert(i, new Block(block.Start, aligned - block.Start));
            }

            return aligned;
        }

        throw new VirtioException(
            VirtioErrorReason.OutOfDmaMemory,
            $"No free block of guest RAM holds {length} bytes aligned to {alignment} (range [0x{Start:x}, 0x{End:x}), {SumFree()} bytes free in {_free.Count} blocks).");
    }

    // Inserts in address order and merges with the neighbours it touches.
    private void Return(Block block)
    {
        int index = 0;
        while (index < _free.Count && _free[index].Start < block.Start)
        {
            index++;
        }

        if (index < _free.Count && block.End == _free[index].Start)
        {
            block = new Block(block.Start, block.Length + _free[index].Length);
            _free.RemoveAt(index);
        }

        if (index > 0 && _free[index - 1].End == block.Start)
        {
            block = new Block(_free[index - 1].Start, _free[index - 1].Length + block.Length);
            _free.RemoveAt(index - 1);
            index--;
        }

        _free.Insert(index, block);
    }

    private ulong SumFree()
    {
        ulong total = 0;
        foreach (Block block in _free)
        {
            total += block.Length;
        }

        return total;
    }

    private readonly record struct Block(ulong Start, ulong Length)
    {
        public ulong End => Start + Length;
    }
}
