using VirtioNet.Net.Offloads;

namespace VirtioNet.Net;

/// <summary>
/// What a burst (or one copying call) did besides moving frames: checksums and segmentation by the device or by the
/// driver, and attempts the ring turned away for want of room. Plain fields in the queue's owner, counted where the
/// decision is made (only for frames that carry an offload, the rare path), handed to
/// <see cref="VirtioNetQueueStatistics.Add(ref BurstTally)"/> once per burst: no locked instruction, no allocation, and
/// one compare for a burst of plain frames.
/// </summary>
internal struct BurstTally
{
    /// <summary>Checksums the device completed (transmit NEEDS_CSUM) or vouched for / left partial (receive DATA_VALID, NEEDS_CSUM).</summary>
    public int ChecksumsByDevice;

    /// <summary>Checksums the driver computed (transmit without VIRTIO_NET_F_CSUM) or completed and verified (receive).</summary>
    public int ChecksumsByDriver;

    /// <summary>Packets the device segments (transmit GSO) or coalesced (receive GSO).</summary>
    public int SegmentationByDevice;

    /// <summary>Packets the driver cut into segments itself (transmit without the HOST_TSO/USO feature).</summary>
    public int SegmentationByDriver;

    /// <summary>Send attempts the ring turned away: no free buffer or descriptor.</summary>
    public int RingFull;

    /// <summary>True when there is nothing to add.</summary>
    public readonly bool IsEmpty => (ChecksumsByDevice | ChecksumsByDriver | SegmentationByDevice | SegmentationByDriver | RingFull) == 0;

    /// <summary>Adds another tally's counts.</summary>
    public void Add(in BurstTally other)
    {
        ChecksumsByDevice += other.ChecksumsByDevice;
        ChecksumsByDriver += other.ChecksumsByDriver;
        SegmentationByDevice += other.SegmentationByDevice;
        SegmentationByDriver += other.SegmentationByDriver;
        RingFull += other.RingFull;
    }

    /// <summary>Counts what a transmit decision has the device or the driver do.</summary>
    public void Count(in TransmitOffloadDecision decision)
    {
        if (decision.NeedsChecksum)
        {
            ChecksumsByDevice++;
        }
        else if (decision.ChecksumInSoftware)
        {
            ChecksumsByDriver++;
        }

        if (decision.SegmentInSoftware)
        {
            SegmentationByDriver++;
        }
        else if (decision.GsoType != VirtioNetGsoType.None)
        {
            SegmentationByDevice++;
        }
    }

    /// <summary>Counts what a received frame's header said and what the driver did with its checksum.</summary>
    public void Count(in ReceivedFrameInfo info)
    {
        switch (info.Checksum)
        {
            case ReceivedChecksumState.DeviceValidated or ReceivedChecksumState.Partial:
                ChecksumsByDevice++;
                break;
            case ReceivedChecksumState.Completed or ReceivedChecksumState.Verified or ReceivedChecksumState.Invalid:
                ChecksumsByDriver++;
                break;
        }

        if (info.IsGso)
        {
            SegmentationByDevice++;
        }
    }
}
