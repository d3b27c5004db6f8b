namespace VirtioNet.Net;

/// <summary>What a <see cref="VirtioNetDeviceEvent"/> reports.</summary>
public enum VirtioNetDeviceEventKind
{
    /// <summary>The link came up (VIRTIO_NET_S_LINK_UP set). Ref: virtio v1.2 §5.1.4.</summary>
    LinkUp,

    /// <summary>The link went down (VIRTIO_NET_S_LINK_UP cleared).</summary>
    LinkDown,

    /// <summary>The device asked the driver to announce its addresses (VIRTIO_NET_S_ANNOUNCE). Ref: virtio v1.2 §5.1.6.5.4.</summary>
    AnnounceRequested,

    /// <summary>The device's configuration changed (a configuration change notification was taken). Ref: virtio v1.2 §2.5.</summary>
    ConfigurationChanged,

    /// <summary>A queue was found broken: the device wrote something impossible into it, or set DEVICE_NEEDS_RESET.</summary>
    QueueBroken,

    /// <summary>The device was reset and set up again (<see cref="VirtioNetDevice.Recover"/>, or automatically).</summary>
    Recovered,

    /// <summary>
    /// A transmit queue held frames the device returned nothing of for <see cref="VirtioNetOptions.TransmitTimeout"/>
    /// (the transmit watchdog); the detail names the queue.
    /// </summary>
    TransmitTimeout,

    /// <summary>The device was suspended (<see cref="VirtioNetDevice.Suspend"/>): reset, its rings released.</summary>
    Suspended,

    /// <summary>The device was brought up again after a suspend (<see cref="VirtioNetDevice.Resume"/>).</summary>
    Resumed,
}
