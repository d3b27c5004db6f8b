using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>
/// What the copying receive entry (<see cref="VirtioNetQueuePair.TryReceive"/>) says about the frame it delivered, all
/// in one record: its length, the 802.1Q tag it carried, the hash the device reported, and what the virtio_net_hdr
/// said (checksum state, GSO type and size, and with RSC_EXT the segments and duplicated ACKs coalesced into it).
/// Ref: virtio v1.2 §5.1.6.4.
/// </summary>
/// <param name="Length">The frame's length in the destination (without the tag when it was stripped).</param>
/// <param name="VlanTag">
/// The outermost 802.1Q tag, or null for an untagged frame. Stripped from the destination when the pair's
/// <see cref="VirtioNetQueuePair.StripVlanTags"/> is on, left in place otherwise.
/// </param>
/// <param name="Hash">hash_value and hash_report (none without VIRTIO_NET_F_HASH_REPORT). Ref: virtio v1.2 §5.1.6.4.3.4.</param>
/// <param name="Offload">Checksum state, GSO type and size, and RSC counts, checked against the negotiated features.</param>
public readonly record struct ReceivedFrame(int Length, VlanTag? VlanTag, ReceiveHash Hash, ReceivedFrameInfo Offload)
{
    /// <summary>Segments the device coalesced into this frame (RSC_EXT), 0 otherwise.</summary>
    public int CoalescedSegments => Offload.CoalescedSegments;

    /// <summary>Duplicated ACKs the device coalesced into this frame (RSC_EXT), 0 otherwise.</summary>
    public int DuplicateAcks => Offload.DuplicateAcks;
}
