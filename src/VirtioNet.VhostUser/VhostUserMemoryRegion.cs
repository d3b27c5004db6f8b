namespace VirtioNet.VhostUser;

/// <summary>One entry of SET_MEM_TABLE's memory regions description (32 bytes). Ref: vhost-user.rst, "Memory regions description".</summary>
/// <param name="GuestAddress">Where descriptor addresses place the region.</param>
/// <param name="Size">Its length in bytes.</param>
/// <param name="UserAddress">Where ring addresses (SET_VRING_ADDR) place the region: the frontend's virtual address.</param>
/// <param name="MmapOffset">Where the region starts in the file descriptor sent with it.</param>
internal readonly record struct VhostUserMemoryRegion(ulong GuestAddress, ulong Size, ulong UserAddress, ulong MmapOffset)
{
    /// <summary>The entry's length on the wire.</summary>
    public const int Length = 32;
}
