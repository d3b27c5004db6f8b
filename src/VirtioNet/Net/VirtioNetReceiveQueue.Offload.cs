using VirtioNet.Core;
using VirtioNet.Net.Offloads;

namespace VirtioNet.Net;

// Receive offloads (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_USO4/6, RSC_EXT): the header of every received packet is checked
// against what was negotiated, partial checksums are completed, and what the header said is reported beside the frame.
public sealed partial class VirtioNetReceiveQueue
{
    // The negotiated features the receive checks go by (the guest offload bits, GUEST_UDP_TUNNEL_GSO above 63); none
    // until the device configures them.
    private VirtioFeatureSet _offloadFeatures;

    // HASH_REPORT negotiated: the header's hash fields are meaningful (a 24-byte UDP tunnel header has them as padding otherwise).
    private bool _hashReported;

    // Recompute DATA_VALID checksums rather than trust the device (VirtioNetOptions.VerifyReceivedChecksums).
    private bool _verifyDataValid = true;

    // Where the header of the packet being received starts in _pool (its first buffer), set by the receive paths
    // while that buffer is still the driver's.
    private int _lastHeaderStart;

    // What the header of the frame TryReceive delivered last said, after checking.
    private ReceivedFrameInfo _lastFrameInfo;

    /// <summary>
    /// Like <see cref="TryReceive(Span{byte}, out int)"/>, and reports what the device said about the frame: its
    /// checksum state (a partial checksum is already completed in <paramref name="destination"/>; DATA_VALID is
    /// re-checked unless turned off) and, for a coalesced frame larger than the MTU (GUEST_TSO4/6, GUEST_USO4/6), the
    /// GSO type and segment size, and with RSC_EXT the segments and duplicated ACKs the device coalesced into it (also
    /// summed in <see cref="VirtioNetQueueStatistics.CoalescedSegments"/>). Headers that contradict the negotiated
    /// features or the frame are counted in <see cref="VirtioNetQueueStatistics.Errors"/> and their packets dropped.
    /// Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    /// <param name="destination">At least <see cref="MaxFrameLength"/> bytes (64 KiB and more with guest GSO).</param>
    /// <param name="length">The frame's length.</param>
    /// <param name="info">Checksum state and GSO information.</param>
    public bool TryReceive(Span<byte> destination, out int length, out ReceivedFrameInfo info)
    {
        _lastFrameInfo = default;
        bool received = TryReceive(destination, out length);
        info = received ? _lastFrameInfo : default;
        return received;
    }

    /// <summary>Sets what the receive checks go by; called by the device once features are negotiated.</summary>
    internal void ConfigureOffloads(VirtioFeatureSet negotiated, bool verifyDataValid)
    {
        _offloadFeatures = negotiated;
        _hashReported = negotiated.ContainsAny(VirtioNetFeatures.HashReport);
        _verifyDataValid = verifyDataValid;
    }

    // Called by TryReceive for each packet, with the header still in its first buffer: false drops the packet.
    private bool CheckOffloads(Span<byte> frame) =>
        ReceiveOffload.TryProcess(_pool.Span.Slice(_lastHeaderStart, _headerLength), frame, _offloadFeatures, _verifyDataValid, out _lastFrameInfo);
}
