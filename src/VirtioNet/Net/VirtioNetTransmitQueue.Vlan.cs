using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>802.1Q tag insertion on transmit: virtio has no tag offload, so the driver writes the tag itself.</summary>
public sealed partial class VirtioNetTransmitQueue
{
    // The tagged copy of a frame, made once per queue on first use (not per packet), then handed to TrySend.
    private byte[]? _vlanScratch;

    /// <summary>
    /// Sends <paramref name="frame"/> (untagged) with <paramref name="tag"/> inserted after its addresses. Returns false
    /// on back-pressure, like <see cref="TrySend(ReadOnlySpan{byte})"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The frame is shorter than an Ethernet header, or too long to carry a tag.</exception>
    public bool TrySend(ReadOnlySpan<byte> frame, VlanTag tag)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (frame.Length + EthernetFrame.VlanTagLength > MaxFrameLength)
        {
            throw new ArgumentException($"A frame to tag must leave room for the 4-byte tag: at most {MaxFrameLength - EthernetFrame.VlanTagLength} bytes; this one has {frame.Length}.", nameof(frame));
        }

        _vlanScratch ??= new byte[MaxFrameLength];
        int length = VlanFrame.InsertTag(frame, tag, _vlanScratch);
        return TrySend(_vlanScratch.AsSpan(0, length));
    }
}
