namespace VirtioNet.VhostUser;

/// <summary>How to reach a vhost-user backend. Every default is said beside it, with why.</summary>
public sealed record VhostUserOptions
{
    /// <summary>The unix socket path (at most 107 bytes).</summary>
    public required string SocketPath { get; init; }

    /// <summary>Who listens. Default <see cref="VhostUserSocketMode.Connect"/>: backends such as DPDK's listen unless told otherwise.</summary>
    public VhostUserSocketMode SocketMode { get; init; } = VhostUserSocketMode.Connect;

    /// <summary>
    /// How long to wait for the backend. Connect mode: retries while the socket is missing or refuses (a backend still
    /// starting or restarting). Listen mode: waits for the backend to connect. Default 5 s: DPDK's client mode retries
    /// once a second, and a testpmd starts in about one.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a reply may take. Default 5 s: a healthy backend answers in microseconds, so anything near this means a
    /// peer that is not a vhost-user backend (a silent socket) or a stuck one, and the caller should hear about it.
    /// </summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Queue pairs the driver may use; refused when the backend reports fewer (GET_QUEUE_NUM). Above 1, the transport
    /// offers VIRTIO_NET_F_MQ with max_virtqueue_pairs capped at this value, and serves the control queue itself
    /// (VQ_PAIRS_SET becomes SET_VRING_ENABLE). Default 1: no control queue, exactly the single-queue device.
    /// </summary>
    public int QueuePairs { get; init; } = 1;

    /// <summary>
    /// A MAC address to report as the device's (VIRTIO_NET_F_MAC) when the backend has no configuration space to read one
    /// from. Default null: the feature is not reported and the net driver picks a random locally administered address.
    /// </summary>
    public byte[]? MacAddress { get; init; }

    /// <summary>
    /// Reconnect by itself when the backend goes away (<see cref="VhostUserNetDevice"/>: a watcher thread sees the socket's
    /// hang-up within <see cref="ReconnectPollInterval"/>, the device reports its link down, the transport connects again
    /// (or waits for the backend to connect again) for as long as it takes, and the same device object is recovered on the
    /// new session with everything it was told, then reports its link up). Default false: without it
    /// <see cref="VhostUserNetDevice.Reconnect"/> is the caller's to call.
    /// </summary>
    public bool AutoReconnect { get; init; }

    /// <summary>How often the watcher of <see cref="AutoReconnect"/> looks at the socket. Default 50 ms: one non-blocking poll(2) each time.</summary>
    public TimeSpan ReconnectPollInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Protocol features never negotiated even when offered (to exercise the paths without them). Default none.</summary>
    public VhostUserProtocolFeatures DisabledProtocolFeatures { get; init; }

    /// <summary>Checks the values; called by the transport before use.</summary>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(SocketPath);
        if (ConnectTimeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectTimeout), ConnectTimeout, "ConnectTimeout must not be negative.");
        }

        if (ReconnectPollInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectPollInterval), ReconnectPollInterval, "ReconnectPollInterval must be positive.");
        }

        if (ReplyTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ReplyTimeout), ReplyTimeout, "ReplyTimeout must be positive.");
        }

        // 128 pairs is what the 8-bit vring index of SET_VRING_KICK/CALL can name (256 rings).
        if (QueuePairs is < 1 or > 128)
        {
            throw new ArgumentOutOfRangeException(nameof(QueuePairs), QueuePairs, "QueuePairs must be 1 to 128.");
        }

        if (MacAddress is { Length: not EthernetFrame.AddressLength })
        {
            throw new ArgumentException("MacAddress must be 6 bytes.", nameof(MacAddress));
        }
    }
}
