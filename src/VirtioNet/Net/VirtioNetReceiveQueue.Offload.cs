using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Vlan;
using VirtioNet.Core;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Net;

// Receive offloads (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_USO4/6, RSC_EXT): the header of every received packet is checked
// against what was negotiated, partial checksums are completed, and what the header said is reported beside the frame.
internal sealed partial class VirtioNetReceiveQueue
{
    // The negotiated features the receive checks go by (the guest offload bits, GUEST_UDP_TUNNEL_GSO above 63); none
    // until the device configures them.
    private VirtioFeatureSet _offloadFeatures;

    // HASH_REPORT negotiated: the header's hash fields are meaningful (a 24-byte UDP tunnel header has them as padding otherwise).
    private bool _hashReported;

    // Recompute DATA_VALID checksums rather than trust the device (VirtioNetOptions.VerifyReceivedChecksums).
    private bool _verifyDataValid = true;

    /// <summary>Sets what the receive checks go by; called by the device once features are negotiated.</summary>
    internal void ConfigureOffloads(VirtioFeatureSet negotiated, bool verifyDataValid)
    {
        _offloadFeatures = negotiated;
        _hashReported = negotiated.ContainsAny(VirtioNetFeatures.HashReport);
        _verifyDataValid = verifyDataValid;
    }

    // Called by TryReceive for each packet, with the header still in its first buffer: false drops the packet.
    private bool CheckOffloads(int headerStart, Span<byte> frame, out ReceivedFrameInfo info) =>
        ReceiveOffload.TryProcess(_pool.Span.Slice(headerStart, _headerLength), frame, _offloadFeatures, _verifyDataValid, out info);

    // The record of a delivered frame: its hash read from the header (still the driver's until the refill reposts the
    // buffer), its outermost 802.1Q tag, stripped in place when asked.
    private ReceivedFrame Describe(Span<byte> destination, int length, int headerStart, ReceivedFrameInfo info, bool stripVlanTag)
    {
        ReceiveHash hash = _hashReported ? ReceiveHash.Read(_pool.Span.Slice(headerStart, _headerLength)) : default;
        VlanTag? tag = null;
        if (stripVlanTag)
        {
            if (VlanFrame.TryStripTag(destination[..length], out VlanTag found, out int untagged))
            {
                tag = found;
                length = untagged;
            }
        }
        else if (VlanFrame.TryReadTag(destination[..length], out VlanTag found))
        {
            tag = found;
        }

        return new ReceivedFrame(length, tag, hash, info);
    }
}
