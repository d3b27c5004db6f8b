using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace VirtioNet.Discovery;

/// <summary>
/// A property of a device tree node: a name and a value of raw bytes. Numbers in a device tree are big-endian cells
/// of 32 bits; strings are NUL-terminated. The <c>As*</c> helpers decode the value and throw
/// <see cref="Core.VirtioException"/> with <see cref="Core.VirtioErrorReason.MalformedDescription"/> when the value
/// does not have the shape asked for. Ref: devicetree v0.4 §2.2.4 (property values).
/// </summary>
public sealed class DeviceTreeProperty
{
    internal DeviceTreeProperty(DeviceTreeNode node, string name, ReadOnlyMemory<byte> value, int blobOffset)
    {
        Node = node;
        Name = name;
        Value = value;
        BlobOffset = blobOffset;
    }

    /// <summary>The node the property belongs to.</summary>
    public DeviceTreeNode Node { get; }

    /// <summary>The property name, e.g. "reg" or "#address-cells".</summary>
    public string Name { get; }

    /// <summary>The raw value, exactly as stored in the blob.</summary>
    public ReadOnlyMemory<byte> Value { get; }

    /// <summary>The value's length in bytes.</summary>
    public int Length => Value.Length;

    /// <summary>True for a property with no value (a boolean such as <c>interrupt-controller</c> or <c>dma-coherent</c>).</summary>
    public bool IsEmpty => Value.IsEmpty;

    /// <summary>Where the value starts in the blob, for messages.</summary>
    internal int BlobOffset { get; }

    /// <summary>Decodes a single NUL-terminated string with no other NUL in it.</summary>
    public string AsString()
    {
        ReadOnlySpan<byte> bytes = Value.Span;
        if (bytes.IsEmpty || bytes[^1] != 0)
        {
            Fail("is not a NUL-terminated string");
        }

        ReadOnlySpan<byte> text = bytes[..^1];
        if (text.Contains((byte)0))
        {
            Fail("holds more than one string where one was expected");
        }

        return Encoding.UTF8.GetString(text);
    }

    /// <summary>Decodes a list of NUL-terminated strings (a <c>stringlist</c>, e.g. <c>compatible</c>).</summary>
    public IReadOnlyList<string> AsStringList()
    {
        ReadOnlySpan<byte> bytes = Value.Span;
        if (bytes.IsEmpty || bytes[^1] != 0)
        {
            Fail("is not a list of NUL-terminated strings");
        }

        var strings = new List<string>();
        while (!bytes.IsEmpty)
        {
            int end = bytes.IndexOf((byte)0);
            strings.Add(Encoding.UTF8.GetString(bytes[..end]));
            bytes = bytes[(end + 1)..];
        }

        return strings;
    }

    /// <summary>Decodes a single 32-bit cell (a <c>u32</c>, e.g. <c>#address-cells</c> or <c>phandle</c>).</summary>
    public uint AsUInt32()
    {
        if (Value.Length != sizeof(uint))
        {
            Fail($"is {Value.Length} bytes, not the 4 of a u32");
        }

        return BinaryPrimitives.ReadUInt32BigEndian(Value.Span);
    }

    /// <summary>Decodes a 64-bit value stored as two cells, most significant first (a <c>u64</c>).</summary>
    public ulong AsUInt64()
    {
        if (Value.Length != sizeof(ulong))
        {
            Fail($"is {Value.Length} bytes, not the 8 of a u64");
        }

        return BinaryPrimitives.ReadUInt64BigEndian(Value.Span);
    }

    /// <summary>Decodes the value as an array of 32-bit cells (a <c>prop-encoded-array</c>).</summary>
    public uint[] AsUInt32Array()
    {
        if (Value.Length % sizeof(uint) != 0)
        {
            Fail($"is {Value.Length} bytes, not a whole number of 4-byte cells");
        }

        var cells = new uint[Value.Length / sizeof(uint)];
        ReadOnlySpan<byte> bytes = Value.Span;
        for (int i = 0; i < cells.Length; i++)
        {
            cells[i] = BinaryPrimitives.ReadUInt32BigEndian(bytes.Slice(i * sizeof(uint), sizeof(uint)));
        }

        return cells;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Node.Path}:{Name} ({Value.Length} bytes)";

    /// <summary>Throws the failure for this property's value, naming the node, the property and where it is.</summary>
    [DoesNotReturn]
    internal void Fail(string what) =>
        DeviceTreeErrors.Throw($"property '{Name}' of {Node.Path} (value at offset 0x{BlobOffset:x}) {what}.");
}
