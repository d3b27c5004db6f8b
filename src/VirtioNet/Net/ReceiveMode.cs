namespace VirtioNet.Net;

/// <summary>
/// How receive buffers are laid out, chosen once from the negotiated features and dispatched in exactly two places:
/// refill and receive. Ref: virtio v1.2 §5.1.6.3 (Setting Up Receive Buffers).
/// </summary>
public enum ReceiveMode
{
    /// <summary>VIRTIO_NET_F_MRG_RXBUF: single-descriptor buffers; a packet may span several, as num_buffers says.</summary>
    Mergeable,

    /// <summary>No MRG_RXBUF, but packets larger than a page may arrive (guest GSO or an MTU above 1500): each buffer is a chain of pages.</summary>
    Big,

    /// <summary>No MRG_RXBUF and no large packets: each buffer holds one header and one full-size Ethernet frame.</summary>
    Small,
}
