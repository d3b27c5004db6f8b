using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// The Toeplitz hash that VIRTIO_NET_F_RSS and VIRTIO_NET_F_HASH_REPORT devices compute over a packet's addresses and
/// ports, as Microsoft's RSS specification defines it (the input is source address, destination address, source port,
/// destination port, all in network byte order). Used to check a reported hash and to predict which queue an
/// indirection table sends a flow to. Ref: virtio v1.2 §5.1.6.5.7.4.
/// </summary>
public static class ToeplitzHash
{
    /// <summary>The longest key the virtio RSS command carries (VIRTIO_NET_RSS_MAX_KEY_SIZE): 40 bytes.</summary>
    public const int MaxKeyLength = 40;

    /// <summary>
    /// The 40-byte key of Microsoft's RSS verification suite, the default key of most drivers and the one the hash test
    /// vectors are computed with.
    /// </summary>
    public static ReadOnlySpan<byte> DefaultKey =>
    [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
        0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
        0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// <summary>
    /// Hashes <paramref name="input"/> with <paramref name="key"/>: for every input bit that is set, most significant
    /// first, the 32 key bits starting at that bit's position are XORed into the result.
    /// </summary>
    /// <exception cref="ArgumentException">The key is shorter than the input plus 4 bytes.</exception>
    public static uint Compute(ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        if (key.Length < input.Length + 4)
        {
            throw new ArgumentException($"A Toeplitz key must be at least 4 bytes longer than the input; the key has {key.Length} bytes for {input.Length} input bytes.", nameof(key));
        }

        uint result = 0;
        uint window = BinaryPrimitives.ReadUInt32BigEndian(key);
        for (int i = 0; i < input.Length; i++)
        {
            byte next = key[i + 4];
            for (int bit = 7; bit >= 0; bit--)
            {
                if ((input[i] & (1 << bit)) != 0)
                {
                    result ^= window;
                }

                window = (window << 1) | (uint)((next >> bit) & 1);
            }
        }

        return result;
    }

    /// <summary>The 2-tuple hash (addresses only) of an IPv4 or IPv6 flow.</summary>
    public static uint ComputeAddresses(ReadOnlySpan<byte> key, IPAddress source, IPAddress destination)
    {
        Span<byte> input = stackalloc byte[32];
        int length = WriteAddresses(input, source, destination);
        return Compute(key, input[..length]);
    }

    /// <summary>The 4-tuple hash (addresses, then ports) of a TCP or UDP flow over IPv4 or IPv6.</summary>
    public static uint ComputeAddressesAndPorts(ReadOnlySpan<byte> key, IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort)
    {
        Span<byte> input = stackalloc byte[36];
        int length = WriteAddresses(input, source, destination);
        BinaryPrimitives.WriteUInt16BigEndian(input[length..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(input[(length + 2)..], destinationPort);
        return Compute(key, input[..(length + 4)]);
    }

    private static int WriteAddresses(Span<byte> input, IPAddress source, IPAddress destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        if (source.AddressFamily != destination.AddressFamily || source.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"Both addresses must be IPv4 or both IPv6; they are {source.AddressFamily} and {destination.AddressFamily}.", nameof(destination));
        }

        int size = source.AddressFamily == AddressFamily.InterNetwork ? 4 : 16;
        _ = source.TryWriteBytes(input, out _);
        _ = destination.TryWriteBytes(input[size..], out _);
        return 2 * size;
    }
}
