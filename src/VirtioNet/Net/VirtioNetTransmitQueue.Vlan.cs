using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>802.1Q tag insertion on transmit: virtio has no tag offload, so the driver writes the tag itself.</summary>
internal sealed partial class VirtioNetTransmitQueue
{
    /// <summary>
    /// Sends <paramref name="frame"/> (untagged) with <paramref name="tag"/> inserted after its addresses. Returns false
    /// on back-pressure, like <see cref="TrySend(ReadOnlySpan{byte})"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The frame is shorter than an Ethernet header, or too long to carry a tag.</exception>
    public bool TrySend(ReadOnlySpan<byte> frame, VlanTag tag)
    {
        if (frame.Length + EthernetFrame.VlanTagLength > MaxFrameLength)
        {
            throw new ArgumentException($"A frame to tag must leave room for the 4-byte tag: at most {MaxFrameLength - EthernetFrame.VlanTagLength} bytes; this one has {frame.Length}.", nameof(frame));
        }

        // The tag is written while the frame is copied into the transmit buffer: one copy, as for untagged frames.
        return TrySendCore(frame, tag);
    }
}
