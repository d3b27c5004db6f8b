using System.Buffers.Binary;

namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// <c>struct virtio_net_ctrl_coal</c>: the device waits for <see cref="MaxPackets"/> packets or
/// <see cref="MaxMicroseconds"/> µs, whichever comes first, before it notifies. Zero in both sends a notification per
/// packet (the device's reset state). Ref: virtio v1.3 §5.1.6.5.9 (Notifications Coalescing).
/// </summary>
/// <param name="MaxPackets">max_packets (le32).</param>
/// <param name="MaxMicroseconds">max_usecs (le32).</param>
public readonly record struct NotificationCoalescing(uint MaxPackets, uint MaxMicroseconds)
{
    /// <summary>The encoded length: two le32 fields.</summary>
    public const int Length = 8;

    /// <summary>Reads the structure (little-endian) from the start of <paramref name="source"/>, which holds at least <see cref="Length"/> bytes.</summary>
    public static NotificationCoalescing Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(source), BinaryPrimitives.ReadUInt32LittleEndian(source[4..]));

    /// <summary>Writes the structure (little-endian) at the start of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, MaxPackets);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], MaxMicroseconds);
    }
}
