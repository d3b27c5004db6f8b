using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>A chain the software device popped from the available ring.</summary>
public sealed class DeviceChain
{
    private readonly HeapDmaAllocator _memory;

    internal DeviceChain(HeapDmaAllocator memory, ushort head, bool indirect, List<DeviceBuffer> buffers)
    {
        _memory = memory;
        Head = head;
        Indirect = indirect;
        Buffers = buffers;
    }

    /// <summary>The head descriptor index, which goes into the used entry.</summary>
    public ushort Head { get; }

    /// <summary>True when the head descriptor pointed to an indirect table.</summary>
    public bool Indirect { get; }

    /// <summary>The buffers in chain order.</summary>
    public IReadOnlyList<DeviceBuffer> Buffers { get; }

    /// <summary>Total length of the device-writable buffers.</summary>
    public long WritableCapacity
    {
        get
        {
            long total = 0;
            foreach (DeviceBuffer buffer in Buffers)
            {
                total += buffer.Writable ? buffer.Length : 0;
            }

            return total;
        }
    }

    /// <summary>The device-readable buffers' contents, concatenated.</summary>
    public byte[] ReadReadable()
    {
        var data = new List<byte>();
        foreach (DeviceBuffer buffer in Buffers)
        {
            if (!buffer.Writable)
            {
                data.AddRange(_memory.Map(buffer.Address, (int)buffer.Length));
            }
        }

        return [.. data];
    }

    /// <summary>Writes <paramref name="data"/> across the device-writable buffers; returns the bytes written.</summary>
    public int WriteWritable(ReadOnlySpan<byte> data)
    {
        int written = 0;
        foreach (DeviceBuffer buffer in Buffers)
        {
            if (!buffer.Writable || written == data.Length)
            {
                continue;
            }

            int part = Math.Min((int)buffer.Length, data.Length - written);
            data.Slice(written, part).CopyTo(_memory.Map(buffer.Address, part));
            written += part;
        }

        return written;
    }
}
