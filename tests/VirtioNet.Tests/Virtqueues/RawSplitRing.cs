using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>A split ring in DMA memory written field by field, as a hostile or buggy driver may write it.</summary>
internal sealed class RawSplitRing : IDisposable
{
    private readonly HeapDmaAllocator _memory;
    private readonly DmaRegion _block;
    private readonly SplitQueueLayout _layout;
    private ushort _availIdx;

    public RawSplitRing(HeapDmaAllocator memory, int size)
    {
        _memory = memory;
        _layout = new SplitQueueLayout(size);
        _block = memory.Allocate(_layout.TotalLength, _layout.Alignment);
    }

    public ulong DescriptorArea => _block.DeviceAddress + (ulong)_layout.DescriptorTableOffset;

    public ulong DriverArea => _block.DeviceAddress + (ulong)_layout.AvailableRingOffset;

    public ulong DeviceArea => _block.DeviceAddress + (ulong)_layout.UsedRingOffset;

    /// <summary>Writes descriptor <paramref name="index"/> of a table in <paramref name="table"/>.</summary>
    public static void Write(DmaRegion table, int index, ulong address, uint length, ushort flags, ushort next)
    {
        nint descriptor = table.Pointer + (index * SplitRing.DescriptorSize);
        SharedMemory.WriteUInt64(descriptor + SplitRing.DescriptorAddrOffset, address);
        SharedMemory.WriteUInt32(descriptor + SplitRing.DescriptorLenOffset, length);
        SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorFlagsOffset, flags);
        SharedMemory.WriteUInt16(descriptor + SplitRing.DescriptorNextOffset, next);
    }

    public void Descriptor(int index, ulong address, uint length, ushort flags, ushort next) => Write(_block, index, address, length, flags, next);

    /// <summary>Puts <paramref name="head"/> in the next available entry and publishes it.</summary>
    public void Publish(ushort head)
    {
        SharedMemory.WriteUInt16(_block.Pointer + _layout.AvailEntryOffset(_availIdx % _layout.Size), head);
        SetAvailIdx((ushort)(_availIdx + 1));
    }

    public void SetAvailIdx(ushort value)
    {
        _availIdx = value;
        SharedMemory.WriteUInt16(_block.Pointer + _layout.AvailIdxOffset, value);
    }

    public void Dispose() => _memory.Free(_block);
}
