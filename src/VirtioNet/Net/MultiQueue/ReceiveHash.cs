using System.Buffers.Binary;

namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// The hash a VIRTIO_NET_F_HASH_REPORT device computed for a received packet: <c>hash_value</c> (le32 at offset 12 of
/// the header) and <c>hash_report</c> (le16 at offset 16). Ref: virtio v1.2 §5.1.6 and §5.1.6.4.3.4.
/// </summary>
/// <param name="Value">The Toeplitz hash; meaningful only when <paramref name="Report"/> is not <see cref="HashReportType.None"/>.</param>
/// <param name="Report">Which fields were hashed, or <see cref="HashReportType.None"/>.</param>
public readonly record struct ReceiveHash(uint Value, HashReportType Report)
{
    /// <summary>hash_value's offset in the 20-byte header.</summary>
    public const int ValueOffset = 12;

    /// <summary>hash_report's offset in the 20-byte header.</summary>
    public const int ReportOffset = 16;

    /// <summary>True when the device reported a hash.</summary>
    public bool IsPresent => Report != HashReportType.None;

    /// <summary>Reads the two fields from a 20-byte header; a shorter header (no HASH_REPORT) reads as none.</summary>
    public static ReceiveHash Read(ReadOnlySpan<byte> header) =>
        header.Length < VirtioNetHeader.HashReportLength
            ? default
            : new ReceiveHash(
                BinaryPrimitives.ReadUInt32LittleEndian(header[ValueOffset..]),
                (HashReportType)BinaryPrimitives.ReadUInt16LittleEndian(header[ReportOffset..]));

    /// <inheritdoc/>
    public override string ToString() => IsPresent ? $"0x{Value:x8} ({Report})" : "none";
}
