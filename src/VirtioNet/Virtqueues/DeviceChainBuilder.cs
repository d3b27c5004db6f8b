using System.Diagnostics.CodeAnalysis;
using VirtioNet.Core;

namespace VirtioNet.Virtqueues;

/// <summary>
/// Collects the buffers of one chain for <see cref="DeviceSplitRing"/> and <see cref="DevicePackedRing"/>, applying the
/// rules both layouts share: every buffer inside device memory, no readable buffer after a writable one
/// (Ref: virtio v1.2 §2.7.4.2, §2.8.4), no more buffers than the caller has room for.
/// </summary>
internal ref struct DeviceChainBuilder(IDeviceMemory memory, Span<DeviceBuffer> buffers)
{
    private readonly IDeviceMemory _memory = memory;
    private readonly Span<DeviceBuffer> _buffers = buffers;

    // A writable buffer was seen: every later one must be writable too.
    private bool _sawWritable;

    /// <summary>Buffers collected so far.</summary>
    public int Count { get; private set; }

    /// <summary>The most buffers the chain may have.</summary>
    public readonly int Capacity => _buffers.Length;

    /// <summary>Adds one buffer after checking it.</summary>
    public void Add(ulong address, uint length, bool writable)
    {
        if (Count == _buffers.Length)
        {
            ThrowMalformed($"a chain of more than {_buffers.Length} buffers (it loops, or is longer than the device takes)");
        }

        if (!writable && _sawWritable)
        {
            ThrowMalformed("a device-readable buffer after a device-writable one");
        }

        if (!_memory.TryTranslate(address, length, out _))
        {
            ThrowMalformed($"a buffer at 0x{address:x} (+{length}) outside the memory the device may access");
        }

        _sawWritable |= writable;
        _buffers[Count++] = new DeviceBuffer(address, length, writable);
    }

    /// <summary>
    /// Adds the buffer one descriptor names after checking it. A split and a packed descriptor keep addr (le64) at offset
    /// 0 and len (le32) at offset 8 (Ref: virtio v1.2 §2.7.5, §2.8.13), so one read serves both.
    /// </summary>
    public void AddDescriptor(nint descriptor, bool writable) => Add(
        SharedMemory.ReadUInt64(descriptor + SplitRing.DescriptorAddrOffset),
        SharedMemory.ReadUInt32(descriptor + SplitRing.DescriptorLenOffset),
        writable);

    /// <summary>
    /// Checks the table an indirect descriptor names (its addr and len, read as <see cref="AddDescriptor"/> reads them)
    /// and returns its CPU address and entry count.
    /// </summary>
    public readonly (nint Table, int Entries) IndirectTable(nint indirectDescriptor, int maxEntries)
    {
        ulong address = SharedMemory.ReadUInt64(indirectDescriptor + SplitRing.DescriptorAddrOffset);
        uint length = SharedMemory.ReadUInt32(indirectDescriptor + SplitRing.DescriptorLenOffset);
        if (length == 0 || length % SplitRing.DescriptorSize != 0 || length / SplitRing.DescriptorSize > (uint)maxEntries)
        {
            ThrowMalformed($"an indirect table of {length} bytes (a whole number of descriptors, 1 to {maxEntries}, is allowed)");
        }

        if (!_memory.TryTranslate(address, length, out nint table))
        {
            ThrowMalformed($"an indirect table at 0x{address:x} (+{length}) outside the memory the device may access");
        }

        return (table, (int)(length / SplitRing.DescriptorSize));
    }

    /// <summary>Throws the error every malformed chain gets: the queue is the other side's mess, not taken.</summary>
    [DoesNotReturn]
    public static void ThrowMalformed(string what)
        => throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"The driver's ring holds {what}; the chain is refused and left untaken.");

    /// <summary>Translates one ring area or throws.</summary>
    public static nint Area(IDeviceMemory memory, ulong address, int length, string name)
    {
        if (!memory.TryTranslate(address, (ulong)length, out nint area))
        {
            ThrowMalformed($"a {name} at 0x{address:x} (+{length}) outside the memory the device may access");
        }

        return area;
    }
}
