namespace VirtioNet.Net.Offloads;

/// <summary>
/// What a caller asks of a frame it sends: the TCP/UDP checksum filled in, and a large segment cut into segments of
/// <see cref="SegmentSize"/> payload bytes. The driver does each by the device when negotiated, in software otherwise.
/// </summary>
/// <param name="ComputeChecksum">Fill the TCP or UDP checksum (VIRTIO_NET_F_CSUM, or software).</param>
/// <param name="SegmentSize">
/// The payload per segment (the TCP MSS, or the UDP payload per datagram); 0 sends the frame as one packet. A frame
/// whose payload is not larger than this is sent as one packet too. Segmentation implies the checksum.
/// </param>
public readonly record struct TransmitOffloadRequest(bool ComputeChecksum, int SegmentSize = 0)
{
    /// <summary>Fill the checksum only.</summary>
    public static TransmitOffloadRequest Checksum => new(true);

    /// <summary>Cut a large TCP or UDP segment into segments of <paramref name="segmentSize"/> payload bytes, checksums filled.</summary>
    public static TransmitOffloadRequest Segmentation(int segmentSize) => new(true, segmentSize);
}
