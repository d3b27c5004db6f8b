namespace VirtioNet.VhostUser;

/// <summary>
/// vhost-user protocol feature bits (GET/SET_PROTOCOL_FEATURES), separate from the virtio feature bits.
/// Ref: vhost-user.rst, "Protocol features".
/// </summary>
[Flags]
public enum VhostUserProtocolFeatures : ulong
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary>VHOST_USER_PROTOCOL_F_MQ (0): GET_QUEUE_NUM answers how many queue pairs the backend has.</summary>
    Mq = 1UL << 0,

    /// <summary>VHOST_USER_PROTOCOL_F_LOG_SHMFD (1): dirty log in shared memory (migration; not used here).</summary>
    LogShmfd = 1UL << 1,

    /// <summary>VHOST_USER_PROTOCOL_F_RARP (2): SEND_RARP after migration (not used here).</summary>
    Rarp = 1UL << 2,

    /// <summary>VHOST_USER_PROTOCOL_F_REPLY_ACK (3): any request may ask for a success/failure reply.</summary>
    ReplyAck = 1UL << 3,

    /// <summary>VHOST_USER_PROTOCOL_F_MTU (4): NET_SET_MTU tells the backend the MTU.</summary>
    Mtu = 1UL << 4,

    /// <summary>VHOST_USER_PROTOCOL_F_SLAVE_REQ / BACKEND_REQ (5): a channel for backend-initiated requests.</summary>
    BackendReq = 1UL << 5,

    /// <summary>VHOST_USER_PROTOCOL_F_CROSS_ENDIAN (6).</summary>
    CrossEndian = 1UL << 6,

    /// <summary>VHOST_USER_PROTOCOL_F_CRYPTO_SESSION (7).</summary>
    CryptoSession = 1UL << 7,

    /// <summary>VHOST_USER_PROTOCOL_F_PAGEFAULT (8): postcopy migration.</summary>
    PageFault = 1UL << 8,

    /// <summary>VHOST_USER_PROTOCOL_F_CONFIG (9): GET_CONFIG reads the device configuration space.</summary>
    Config = 1UL << 9,

    /// <summary>VHOST_USER_PROTOCOL_F_SLAVE_SEND_FD / BACKEND_SEND_FD (10).</summary>
    BackendSendFd = 1UL << 10,

    /// <summary>VHOST_USER_PROTOCOL_F_HOST_NOTIFIER (11).</summary>
    HostNotifier = 1UL << 11,

    /// <summary>VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (12).</summary>
    InflightShmfd = 1UL << 12,

    /// <summary>VHOST_USER_PROTOCOL_F_RESET_DEVICE (13).</summary>
    ResetDevice = 1UL << 13,

    /// <summary>VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS (14).</summary>
    InbandNotifications = 1UL << 14,

    /// <summary>VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS (15).</summary>
    ConfigureMemSlots = 1UL << 15,

    /// <summary>VHOST_USER_PROTOCOL_F_STATUS (16): SET_STATUS/GET_STATUS carry the virtio device status.</summary>
    Status = 1UL << 16,
}
