using System.Buffers.Binary;

namespace VirtioNet.Service;

/// <summary>
/// The struct virtio_net_hdr the TAP puts in front of every frame (linux/virtio_net.h; the same layout as the device's,
/// little-endian on the hosts this runs on): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. The kernel
/// fills it on frames it hands over (a partial checksum, a TSO/USO segment) and reads it on frames it is given.
/// Ref: virtio v1.2 §5.1.6.
/// </summary>
internal readonly record struct KernelVnetHeader(byte Flags, byte GsoType, ushort HdrLen, ushort GsoSize, ushort CsumStart, ushort CsumOffset)
{
    /// <summary>VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum from csum_start, stored at csum_start + csum_offset, is to be completed.</summary>
    public const byte NeedsCsum = 1;

    /// <summary>VIRTIO_NET_HDR_F_DATA_VALID: the checksums were checked.</summary>
    public const byte DataValid = 2;

    /// <summary>gso_type values without the ECN bit (0x80).</summary>
    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    /// <summary>The bytes every header length holds (the legacy header without num_buffers).</summary>
    public const int Length = 10;

    public bool IsGso => (GsoType & ~GsoEcn) != GsoNone;

    public static KernelVnetHeader Read(ReadOnlySpan<byte> header) => new(
        header[0],
        header[1],
        BinaryPrimitives.ReadUInt16LittleEndian(header[2..]),
        BinaryPrimitives.ReadUInt16LittleEndian(header[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(header[6..]),
        BinaryPrimitives.ReadUInt16LittleEndian(header[8..]));

    /// <summary>Writes the header and zeroes the rest of <paramref name="header"/> (num_buffers and beyond, which the kernel ignores on write).</summary>
    public void Write(Span<byte> header)
    {
        header.Clear();
        header[0] = Flags;
        header[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], HdrLen);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], CsumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], CsumOffset);
    }
}
