namespace VirtioNet.Platform;

/// <summary>
/// An MSI-X vector whose message lands in a cell of DMA memory instead of an interrupt controller: the device's
/// message write is the interrupt, and waiting is watching the cell. This is how MSI-X is exercised where no MSI
/// controller is reachable (QEMU's riscv64 <c>virt</c> with the PLIC, driven over qtest: the write goes to guest RAM
/// shared with this process). See docs/PCI.md.
/// </summary>
/// <remarks>
/// Nothing wakes a waiter when the device writes, so <see cref="Wait"/> polls: it spins briefly (a reply to a frame
/// just sent arrives within tens of microseconds), then yields, then sleeps a millisecond at a time, so an idle
/// driver costs little CPU while a busy one sees messages at once.
/// </remarks>
public sealed class MemoryCellInterruptLine : IMessageInterruptLine, IDisposable
{
    // Where the allocator handed the cell out, to give it back.
    private readonly IDmaAllocator _dma;

    // The cell: its own 64-byte block so the device's write never shares a cache line with driver data.
    private readonly DmaRegion _cell;

    // Messages seen (a latched cell found by Acknowledge).
    private long _raiseCount;

    private bool _disposed;

    /// <summary>Allocates the cell for vector <paramref name="number"/> from <paramref name="dma"/>.</summary>
    public MemoryCellInterruptLine(IDmaAllocator dma, int number)
    {
        ArgumentNullException.ThrowIfNull(dma);
        ArgumentOutOfRangeException.ThrowIfNegative(number);
        _dma = dma;
        _cell = dma.Allocate(64, 64);
        Number = number;

        // Any non-zero value will do; one that names the vector makes a stray write recognisable in a memory dump.
        MessageData = 0x4d53_0000u | (uint)(number & 0xffff);
        Clear();
    }

    /// <inheritdoc />
    public int Number { get; }

    /// <inheritdoc />
    public ulong MessageAddress => _cell.DeviceAddress;

    /// <inheritdoc />
    public uint MessageData { get; }

    /// <inheritdoc />
    public bool IsRaised => ReadCell() != 0;

    /// <inheritdoc />
    public long RaiseCount => Interlocked.Read(ref _raiseCount);

    /// <inheritdoc />
    public bool Acknowledge()
    {
        if (ReadCell() == 0)
        {
            return false;
        }

        Clear();
        Interlocked.Increment(ref _raiseCount);
        return true;
    }

    /// <inheritdoc />
    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        InterruptLinePolling.Wait(this, timeout, cancellationToken);

    /// <summary>Returns the cell. The vector must be masked first, or the device could write memory that is no longer the cell.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _dma.Free(_cell);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"MSI-X vector {Number} -> cell 0x{MessageAddress:x} ({(IsRaised ? "latched" : "clear")}, {RaiseCount} messages)";

    private unsafe uint ReadCell()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);

        // SAFETY: the allocator guarantees the 64-byte region is valid until Dispose frees it (checked above); the read
        // is volatile because the device writes the cell behind the compiler's back.
        return Volatile.Read(ref *(uint*)_cell.Pointer);
    }

    private unsafe void Clear()
    {
        // SAFETY: as in ReadCell. Volatile so the clear is not merged with a later read of the cell.
        Volatile.Write(ref *(uint*)_cell.Pointer, 0u);
    }
}
