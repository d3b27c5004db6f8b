using System.Buffers.Binary;

namespace VirtioNet.Net.Vlan;

/// <summary>
/// Inserts and strips IEEE 802.1Q tags in Ethernet frames held in spans: the 4-byte tag (TPID 0x8100, TCI) sits between
/// the source address and the EtherType. Allocates nothing.
/// </summary>
public static class VlanFrame
{
    /// <summary>The tag protocol identifier of an 802.1Q (customer) tag.</summary>
    public const ushort TagProtocolIdentifier = 0x8100;

    /// <summary>Where the tag starts: after the destination and source addresses.</summary>
    public const int TagOffset = 2 * EthernetFrame.AddressLength;

    /// <summary>Reads the outermost 802.1Q tag of <paramref name="frame"/>, if it has one.</summary>
    public static bool TryReadTag(ReadOnlySpan<byte> frame, out VlanTag tag)
    {
        if (frame.Length < EthernetFrame.HeaderLength + EthernetFrame.VlanTagLength
            || BinaryPrimitives.ReadUInt16BigEndian(frame[TagOffset..]) != TagProtocolIdentifier)
        {
            tag = default;
            return false;
        }

        tag = VlanTag.FromTci(BinaryPrimitives.ReadUInt16BigEndian(frame[(TagOffset + 2)..]));
        return true;
    }

    /// <summary>
    /// Copies <paramref name="frame"/> into <paramref name="destination"/> with <paramref name="tag"/> inserted after the
    /// addresses. Returns the tagged length (the frame's plus 4). The spans must not overlap.
    /// </summary>
    /// <exception cref="ArgumentException">The frame is shorter than an Ethernet header, or the destination too short.</exception>
    public static int InsertTag(ReadOnlySpan<byte> frame, VlanTag tag, Span<byte> destination)
    {
        if (frame.Length < EthernetFrame.HeaderLength)
        {
            throw new ArgumentException($"A frame to tag needs at least an Ethernet header ({EthernetFrame.HeaderLength} bytes); this one has {frame.Length}.", nameof(frame));
        }

        int tagged = frame.Length + EthernetFrame.VlanTagLength;
        if (destination.Length < tagged)
        {
            throw new ArgumentException($"The tagged frame needs {tagged} bytes; the destination has {destination.Length}.", nameof(destination));
        }

        frame[..TagOffset].CopyTo(destination);
        BinaryPrimitives.WriteUInt16BigEndian(destination[TagOffset..], TagProtocolIdentifier);
        BinaryPrimitives.WriteUInt16BigEndian(destination[(TagOffset + 2)..], tag.Tci);
        frame[TagOffset..].CopyTo(destination[(TagOffset + EthernetFrame.VlanTagLength)..]);
        return tagged;
    }

    /// <summary>
    /// Removes the outermost 802.1Q tag of <paramref name="frame"/> in place, moving the rest of the frame 4 bytes
    /// forward. Returns false (and leaves the frame alone) when it carries no tag.
    /// </summary>
    /// <param name="frame">The frame, exactly its length.</param>
    /// <param name="tag">The tag removed.</param>
    /// <param name="length">The untagged length (the frame's minus 4).</param>
    public static bool TryStripTag(Span<byte> frame, out VlanTag tag, out int length)
    {
        if (!TryReadTag(frame, out tag))
        {
            length = frame.Length;
            return false;
        }

        // Overlapping copy: Span.CopyTo behaves like memmove.
        frame[(TagOffset + EthernetFrame.VlanTagLength)..].CopyTo(frame[TagOffset..]);
        length = frame.Length - EthernetFrame.VlanTagLength;
        return true;
    }
}
