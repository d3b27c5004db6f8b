using System.Globalization;

namespace VirtioNet.Core;

/// <summary>
/// Feature bits 0 to 127: the four 32-bit feature words a modern transport selects with device_feature_select /
/// driver_feature_select (virtio-pci) or DeviceFeaturesSel / DriverFeaturesSel (virtio-mmio) = 0 to 3.
/// <see cref="Low"/> holds words 0 and 1 (bits 0 to 63, where every <c>ulong</c> feature mask of this library lives),
/// <see cref="High"/> words 2 and 3 (bits 64 to 127). A plain value: copying or combining sets allocates nothing.
/// Ref: virtio v1.4 §2.2 (Feature Bits: 0 to 23, 41, 42 and 50 to 127 are device-specific; 128 and above reserved),
/// §4.1.4.3, §4.2.2.
/// </summary>
public readonly struct VirtioFeatureSet(ulong low, ulong high) : IEquatable<VirtioFeatureSet>
{
    /// <summary>The number of feature bits a set holds (four feature words).</summary>
    public const int BitCount = 128;

    /// <summary>The empty set.</summary>
    public static VirtioFeatureSet None => default;

    /// <summary>Bits 0 to 63: feature words 0 and 1.</summary>
    public ulong Low { get; } = low;

    /// <summary>Bits 64 to 127 (bit 64 is this value's bit 0): feature words 2 and 3.</summary>
    public ulong High { get; } = high;

    /// <summary>True when no bit is set.</summary>
    public bool IsEmpty => (Low | High) == 0;

    /// <summary>The set holding bit <paramref name="bit"/> alone (0 to 127).</summary>
    public static VirtioFeatureSet FromBit(int bit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bit);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(bit, BitCount);
        return bit < 64 ? new VirtioFeatureSet(1UL << bit, 0) : new VirtioFeatureSet(0, 1UL << (bit - 64));
    }

    /// <summary>The set of bits 0 to 63 given as a mask (what every <c>ulong</c> feature constant is).</summary>
    public static VirtioFeatureSet FromUInt64(ulong low) => new(low, 0);

    /// <summary>True when bit <paramref name="bit"/> (0 to 127) is set.</summary>
    public bool Contains(int bit) => !(this & FromBit(bit)).IsEmpty;

    /// <summary>True when any bit of <paramref name="bits"/> is set.</summary>
    public bool ContainsAny(VirtioFeatureSet bits) => ((Low & bits.Low) | (High & bits.High)) != 0;

    /// <summary>True when every bit of <paramref name="bits"/> is set.</summary>
    public bool ContainsAll(VirtioFeatureSet bits) => (Low & bits.Low) == bits.Low && (High & bits.High) == bits.High;

    /// <summary>This set without the bits of <paramref name="bits"/>.</summary>
    /// <remarks>Prefer it to <c>set &amp; ~mask</c> with a <c>ulong</c> mask: <c>~mask</c> is then 64 bits wide and clears bits 64 to 127 too.</remarks>
    public VirtioFeatureSet Without(VirtioFeatureSet bits) => new(Low & ~bits.Low, High & ~bits.High);

    /// <summary>
    /// Feature word <paramref name="select"/> (0 to 3): the 32 bits starting at bit <paramref name="select"/> × 32, as
    /// device_feature / DeviceFeatures shows them for that select value.
    /// </summary>
    public uint GetWord(int select)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(select);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(select, 3);
        ulong pair = select < 2 ? Low : High;
        return (uint)(pair >> (32 * (select & 1)));
    }

    /// <summary>The set built from its four feature words, word 0 first.</summary>
    public static VirtioFeatureSet FromWords(uint word0, uint word1, uint word2, uint word3)
        => new(((ulong)word1 << 32) | word0, ((ulong)word3 << 32) | word2);

    /// <summary>The bits in both sets.</summary>
    public static VirtioFeatureSet operator &(VirtioFeatureSet left, VirtioFeatureSet right) => new(left.Low & right.Low, left.High & right.High);

    /// <summary>The bits in either set.</summary>
    public static VirtioFeatureSet operator |(VirtioFeatureSet left, VirtioFeatureSet right) => new(left.Low | right.Low, left.High | right.High);

    /// <summary>Every bit of the 128 not in the set.</summary>
    public static VirtioFeatureSet operator ~(VirtioFeatureSet value) => new(~value.Low, ~value.High);

    /// <summary>
    /// Bits 0 to 63 as a set: lets every existing <c>ulong</c> feature mask stand where a set is wanted. Complement a
    /// <c>ulong</c> mask after converting it, or use <see cref="Without"/>: <c>~mask</c> taken as a <c>ulong</c> has no bits above 63.
    /// </summary>
    public static implicit operator VirtioFeatureSet(ulong low) => new(low, 0);

    /// <summary>Equal when all 128 bits are.</summary>
    public static bool operator ==(VirtioFeatureSet left, VirtioFeatureSet right) => left.Equals(right);

    /// <summary>Different when any bit is.</summary>
    public static bool operator !=(VirtioFeatureSet left, VirtioFeatureSet right) => !left.Equals(right);

    /// <summary>Named alternative to <c>&amp;</c>.</summary>
    public static VirtioFeatureSet BitwiseAnd(VirtioFeatureSet left, VirtioFeatureSet right) => left & right;

    /// <summary>Named alternative to <c>|</c>.</summary>
    public static VirtioFeatureSet BitwiseOr(VirtioFeatureSet left, VirtioFeatureSet right) => left | right;

    /// <summary>Named alternative to <c>~</c>.</summary>
    public static VirtioFeatureSet OnesComplement(VirtioFeatureSet value) => ~value;

    /// <inheritdoc />
    public bool Equals(VirtioFeatureSet other) => Low == other.Low && High == other.High;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is VirtioFeatureSet other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Low, High);

    /// <summary>Hexadecimal, bit 0 rightmost: 16 digits while no bit above 63 is set, 32 (words 3 to 0) otherwise.</summary>
    public override string ToString() => High == 0
        ? "0x" + Low.ToString("x16", CultureInfo.InvariantCulture)
        : "0x" + High.ToString("x16", CultureInfo.InvariantCulture) + "_" + Low.ToString("x16", CultureInfo.InvariantCulture);
}
