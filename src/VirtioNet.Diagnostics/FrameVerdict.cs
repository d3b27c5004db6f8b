namespace VirtioNet.Diagnostics;

/// <summary>What <see cref="FrameValidator"/> decided about a received frame.</summary>
internal enum FrameVerdict
{
    /// <summary>Parsed and consistent: lengths agree and the checksums that cover it hold.</summary>
    Valid,

    /// <summary>Truncated, inconsistent or with a wrong checksum: dropped and counted as malformed.</summary>
    Malformed,

    /// <summary>Well formed but of a kind this client never handles (IPv6, IP fragments): dropped and counted as ignored.</summary>
    Unsupported,
}
