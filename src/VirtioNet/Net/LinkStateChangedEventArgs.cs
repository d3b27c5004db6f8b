namespace VirtioNet.Net;

/// <summary>The link went up or down (VIRTIO_NET_S_LINK_UP changed), or the device asked for an announcement.</summary>
public sealed class LinkStateChangedEventArgs(bool isUp, bool announceRequested) : EventArgs
{
    /// <summary>The new link state.</summary>
    public bool IsUp { get; } = isUp;

    /// <summary>VIRTIO_NET_S_ANNOUNCE is set: the device asks the driver to announce its addresses.</summary>
    public bool AnnounceRequested { get; } = announceRequested;
}
