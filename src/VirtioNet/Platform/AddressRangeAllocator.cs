using System.Numerics;
using VirtioNet.Core;

namespace VirtioNet.Platform;

/// <summary>
/// First-fit bookkeeping of one address range, for the DMA allocators of platforms: which sub-ranges are handed out
/// and which are free. Free blocks are kept sorted and merged, so freeing everything gives the whole range back.
/// Not thread-safe (the allocators that use it hold a lock); meant for setup time, not the packet path.
/// </summary>
public sealed class AddressRangeAllocator
{
    // Free blocks, sorted by start and never adjacent.
    private readonly List<Block> _free = [];

    // Blocks handed out, by start, with their length: only these can be returned.
    private readonly Dictionary<ulong, ulong> _taken = [];

    /// <summary>Manages [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>).</summary>
    public AddressRangeAllocator(ulong start, ulong length)
    {
        if (length == 0 || start + length < start)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"[0x{start:x}, +0x{length:x}) is empty or wraps around the address space.");
        }

        Start = start;
        End = start + length;
        _free.Add(new Block(start, length));
    }

    /// <summary>The first address managed.</summary>
    public ulong Start { get; }

    /// <summary>One past the last address managed.</summary>
    public ulong End { get; }

    /// <summary>Bytes not handed out (possibly fragmented).</summary>
    public ulong FreeBytes
    {
        get
        {
            ulong sum = 0;
            foreach (Block block in _free)
            {
                sum += block.Length;
            }

            return sum;
        }
    }

    /// <summary>Blocks handed out and not yet returned (a leak shows here).</summary>
    public int TakenBlocks => _taken.Count;

    /// <summary>Free blocks (1 when nothing is fragmented).</summary>
    public int FreeBlocks => _free.Count;

    /// <summary>
    /// Takes a block for a DMA allocator's <see cref="IDmaAllocator.Allocate"/>, with that contract's checks and error:
    /// <paramref name="length"/> and <paramref name="alignment"/> positive, the alignment a power of two, and
    /// <see cref="VirtioErrorReason.OutOfDmaMemory"/> when no free block fits.
    /// </summary>
    /// <param name="length">Bytes wanted.</param>
    /// <param name="alignment">Alignment of the block's start.</param>
    /// <param name="rangeName">What the range is, for the error ("guest RAM", "the vhost-user region").</param>
    /// <exception cref="ArgumentOutOfRangeException">A length or alignment the contract does not allow.</exception>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.OutOfDmaMemory"/> when no block fits.</exception>
    public ulong TakeForDma(int length, int alignment, string rangeName)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(alignment);
        if (!BitOperations.IsPow2(alignment))
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), $"Alignment {alignment} is not a power of two.");
        }

        if (!TryTake((ulong)length, (ulong)alignment, out ulong address))
        {
            throw new VirtioException(
                VirtioErrorReason.OutOfDmaMemory,
                $"No free block of {rangeName} holds {length} bytes aligned to {alignment} (range [0x{Start:x}, 0x{End:x}), {FreeBytes} bytes free in {FreeBlocks} blocks).");
        }

        return address;
    }

    /// <summary>
    /// Takes the lowest block that holds <paramref name="length"/> bytes at a multiple of <paramref name="alignment"/>
    /// (a power of two); the alignment padding and the tail stay free. False when no block fits.
    /// </summary>
    public bool TryTake(ulong length, ulong alignment, out ulong address)
    {
        if (length == 0 || alignment == 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), $"Length {length} must be positive and alignment {alignment} a power of two.");
        }

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

            _taken.Add(aligned, length);
            address = aligned;
            return true;
        }

        address = 0;
        return false;
    }

    /// <summary>True when [<paramref name="address"/>, +<paramref name="length"/>) is exactly a block handed out and not yet returned.</summary>
    public bool IsTaken(ulong address, ulong length) => _taken.TryGetValue(address, out ulong taken) && taken == length;

    /// <summary>
    /// Gives back a block from <see cref="TryTake"/>, merging it with its free neighbours. False (and nothing changes)
    /// when it is not exactly a block handed out: a double or foreign free.
    /// </summary>
    public bool TryReturn(ulong address, ulong length)
    {
        if (!IsTaken(address, length))
        {
            return false;
        }

        _taken.Remove(address);
        var block = new Block(address, length);
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
        return true;
    }

    /// <summary>Forgets every block handed out: the whole range is free again.</summary>
    public void Clear()
    {
        _taken.Clear();
        _free.Clear();
        _free.Add(new Block(Start, End - Start));
    }

    private readonly record struct Block(ulong Start, ulong Length)
    {
        public ulong End => Start + Length;
    }
}
