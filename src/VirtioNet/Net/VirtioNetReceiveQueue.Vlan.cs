using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>802.1Q tag stripping on receive: virtio has no tag offload, so the driver removes the tag itself.</summary>
public sealed partial class VirtioNetReceiveQueue
{
    /// <summary>
    /// Like <see cref="TryReceive(Span{byte}, out int)"/>, and strips the outermost 802.1Q tag in place, reporting it in
    /// <paramref name="tag"/> (null for an untagged frame).
    /// </summary>
    /// <param name="destination">At least <see cref="MaxFrameLength"/> bytes.</param>
    /// <param name="length">The frame's length without the tag.</param>
    /// <param name="tag">The tag removed, or null.</param>
    public bool TryReceive(Span<byte> destination, out int length, out VlanTag? tag)
    {
        if (!TryReceive(destination, out length))
        {
            tag = null;
            return false;
        }

        if (VlanFrame.TryStripTag(destination[..length], out VlanTag found, out int untagged))
        {
            tag = found;
            length = untagged;
        }
        else
        {
            tag = null;
        }

        return true;
    }
}
