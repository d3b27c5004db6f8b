namespace VirtioNet.VhostUser;

/// <summary>Front-end message types this frontend sends. Ref: vhost-user.rst, "Front-end message types".</summary>
internal enum VhostUserRequest : uint
{
    /// <summary>VHOST_USER_GET_FEATURES (1): reply u64, the backend's virtio feature bits.</summary>
    GetFeatures = 1,

    /// <summary>VHOST_USER_SET_FEATURES (2): u64, the features the frontend accepts.</summary>
    SetFeatures = 2,

    /// <summary>VHOST_USER_SET_OWNER (3): starts the session.</summary>
    SetOwner = 3,

    /// <summary>VHOST_USER_SET_MEM_TABLE (5): memory regions, one fd per region in the ancillary data.</summary>
    SetMemTable = 5,

    /// <summary>VHOST_USER_SET_VRING_NUM (8): vring state, the queue size.</summary>
    SetVringNum = 8,

    /// <summary>VHOST_USER_SET_VRING_ADDR (9): vring address description, in the frontend's user addresses.</summary>
    SetVringAddr = 9,

    /// <summary>VHOST_USER_SET_VRING_BASE (10): vring state, where the backend starts reading the available ring.</summary>
    SetVringBase = 10,

    /// <summary>VHOST_USER_GET_VRING_BASE (11): stops the ring; reply vring state with the next available index.</summary>
    GetVringBase = 11,

    /// <summary>VHOST_USER_SET_VRING_KICK (12): u64 index, the kick eventfd in the ancillary data.</summary>
    SetVringKick = 12,

    /// <summary>VHOST_USER_SET_VRING_CALL (13): u64 index, the call eventfd in the ancillary data.</summary>
    SetVringCall = 13,

    /// <summary>VHOST_USER_GET_PROTOCOL_FEATURES (15): reply u64.</summary>
    GetProtocolFeatures = 15,

    /// <summary>VHOST_USER_SET_PROTOCOL_FEATURES (16): u64.</summary>
    SetProtocolFeatures = 16,

    /// <summary>VHOST_USER_GET_QUEUE_NUM (17): reply u64, the queue pairs a net backend supports (with PROTOCOL_F_MQ).</summary>
    GetQueueNum = 17,

    /// <summary>VHOST_USER_SET_VRING_ENABLE (18): vring state, 1 enables and 0 disables (with F_PROTOCOL_FEATURES).</summary>
    SetVringEnable = 18,

    /// <summary>VHOST_USER_GET_CONFIG (24): config space description; reply the same with the bytes (with PROTOCOL_F_CONFIG).</summary>
    GetConfig = 24,

    /// <summary>VHOST_USER_SET_STATUS (39): u64 device status (with PROTOCOL_F_STATUS).</summary>
    SetStatus = 39,

    /// <summary>VHOST_USER_GET_STATUS (40): reply u64 device status (with PROTOCOL_F_STATUS).</summary>
    GetStatus = 40,
}
