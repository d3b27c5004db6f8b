using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of 16-bit big-endian words,
/// with the TCP/UDP pseudo-headers of IPv4 (RFC 793, RFC 768) and IPv6 (RFC 8200 §8.1). Used to complete a
/// VIRTIO_NET_HDR_F_NEEDS_CSUM packet in software and to fill the pseudo-header sum a device expects. Ref: virtio v1.2 §5.1.6.2.
/// </summary>
/// <remarks>
/// Partial sums are returned already folded to 16 bits, so they can be chained across any number of pieces; every piece
/// but the last must have an even length (an odd byte is padded with zero as the final byte of the data). Allocates nothing.
/// </remarks>
public static class InternetChecksum
{
    /// <summary>IP protocol number of TCP.</summary>
    public const byte ProtocolTcp = 6;

    /// <summary>IP protocol number of UDP.</summary>
    public const byte ProtocolUdp = 17;

    /// <summary>
    /// Adds <paramref name="data"/> to the running one's complement sum <paramref name="sum"/> and returns the new sum,
    /// folded to 16 bits (not complemented).
    /// </summary>
    public static uint Add(ReadOnlySpan<byte> data, uint sum = 0)
    {
        // A 64-bit accumulator of 32-bit words cannot overflow below 2^32 words, far beyond any frame; the end-around
        // carries are folded once at the end (RFC 1071 §2(C): the sum is independent of the word size used).
        ulong acc = sum;
        int i = 0;
        for (; i + 4 <= data.Length; i += 4)
        {
            acc += BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
        }

        if (i + 2 <= data.Length)
        {
            acc += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
            i += 2;
        }

        if (i < data.Length)
        {
            acc += (uint)data[i] << 8;
        }

        return Fold(acc);
    }

    /// <summary>Folds a wide one's complement sum to 16 bits (end-around carry).</summary>
    public static ushort Fold(ulong sum)
    {
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)sum;
    }

    /// <summary>The checksum of <paramref name="data"/>: the complement of its folded sum, to be stored big-endian.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => (ushort)~Add(data);

    /// <summary>
    /// True when <paramref name="data"/>, checksum field included, sums to all ones: the check a receiver makes.
    /// </summary>
    public static bool IsValid(ReadOnlySpan<byte> data) => Add(data) == 0xFFFF;

    /// <summary>
    /// The folded sum of the TCP/UDP pseudo-header: source and destination address (4 bytes each for IPv4, 16 for IPv6),
    /// the protocol (next header) and the upper-layer length. The IPv4 and IPv6 layouts differ in order and padding but
    /// not in their one's complement sum, so one function serves both.
    /// </summary>
    /// <exception cref="ArgumentException">The addresses are not both 4 or both 16 bytes long.</exception>
    public static uint PseudoHeaderSum(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int upperLayerLength)
    {
        if (source.Length != destination.Length || (source.Length != 4 && source.Length != 16))
        {
            throw new ArgumentException($"Pseudo-header addresses must both be 4 (IPv4) or 16 (IPv6) bytes; they are {source.Length} and {destination.Length}.", nameof(source));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(upperLayerLength);
        ulong acc = Add(source);
        acc += Add(destination);
        acc += protocol;
        acc += (uint)upperLayerLength >> 16;
        acc += (uint)upperLayerLength & 0xFFFF;
        return Fold(acc);
    }

    /// <summary>
    /// The value a driver stores in the checksum field of a packet it hands over with VIRTIO_NET_HDR_F_NEEDS_CSUM: the
    /// pseudo-header sum, not complemented; the device (or <see cref="CompletePartial"/>) adds the rest. Ref: virtio v1.2 §5.1.6.2.
    /// </summary>
    public static ushort PseudoHeaderChecksum(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int upperLayerLength) =>
        (ushort)PseudoHeaderSum(source, destination, protocol, upperLayerLength);

    /// <summary>
    /// The complete TCP or UDP checksum of <paramref name="segment"/> (transport header and payload, checksum field zero)
    /// with its pseudo-header. For UDP a computed zero is returned as 0xFFFF, since zero on the wire means "no checksum"
    /// (RFC 768; for IPv6 a zero UDP checksum is not allowed at all, RFC 8200 §8.1).
    /// </summary>
    public static ushort ComputeTransport(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, ReadOnlySpan<byte> segment)
    {
        ushort checksum = (ushort)~Add(segment, PseudoHeaderSum(source, destination, protocol, segment.Length));
        return checksum == 0 && protocol == ProtocolUdp ? (ushort)0xFFFF : checksum;
    }

    /// <summary>
    /// Does in software what a device does for VIRTIO_NET_HDR_F_NEEDS_CSUM: sums <paramref name="packet"/> from
    /// <paramref name="checksumStart"/> to its end (the checksum field holding the pseudo-header sum) and stores the
    /// complement, big-endian, at <paramref name="checksumStart"/> + <paramref name="checksumOffset"/>. Ref: virtio v1.2 §5.1.6.2.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The field does not lie inside the packet after the start.</exception>
    public static void CompletePartial(Span<byte> packet, int checksumStart, int checksumOffset)
    {
        if (checksumStart < 0 || checksumOffset < 0 || checksumStart > packet.Length || checksumOffset > packet.Length - checksumStart - 2)
        {
            throw new ArgumentOutOfRangeException(nameof(checksumStart), $"csum_start {checksumStart} + csum_offset {checksumOffset} + 2 lies outside a {packet.Length}-byte packet.");
        }

        ushort checksum = (ushort)~Add(packet[checksumStart..]);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(checksumStart + checksumOffset)..], checksum);
    }
}
