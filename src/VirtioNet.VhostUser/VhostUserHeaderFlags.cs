namespace VirtioNet.VhostUser;

/// <summary>The flags word of a message header. Ref: vhost-user.rst, "Header".</summary>
[Flags]
internal enum VhostUserHeaderFlags : uint
{
    /// <summary>Nothing set (never valid on the wire: the version is required).</summary>
    None = 0,

    /// <summary>Version 1, the only version there is, in bits 0-1.</summary>
    Version1 = 0x1,

    /// <summary>The version field's mask.</summary>
    VersionMask = 0x3,

    /// <summary>Bit 2: set by the backend on every reply.</summary>
    Reply = 0x4,

    /// <summary>Bit 3: the frontend asks for a REPLY_ACK (with PROTOCOL_F_REPLY_ACK).</summary>
    NeedReply = 0x8,
}
