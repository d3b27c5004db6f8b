namespace VirtioNet.VhostUser;

/// <summary>A message header: request (u32), flags (u32), payload size (u32), in native byte order. Ref: vhost-user.rst, "Header".</summary>
/// <param name="Request">The request type.</param>
/// <param name="Flags">Version, reply and need_reply bits.</param>
/// <param name="Size">The payload's length in bytes.</param>
internal readonly record struct VhostUserHeader(VhostUserRequest Request, VhostUserHeaderFlags Flags, uint Size)
{
    /// <summary>The header's length on the wire.</summary>
    public const int Length = 12;
}
