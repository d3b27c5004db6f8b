namespace VirtioNet.Transports.Pci;

/// <summary>
/// <c>struct virtio_pci_common_cfg</c>: offsets in the common configuration structure of a modern virtio-pci device.
/// All fields little-endian. RW = read-write, R = read-only for the driver. Ref: virtio v1.2 §4.1.4.3.
/// </summary>
internal static class VirtioPciCommonCfg
{
    /// <summary>device_feature_select (0x00), le32 RW.</summary>
    public const ulong DeviceFeatureSelect = 0x00;

    /// <summary>device_feature (0x04), le32 R: the 32 feature bits selected by device_feature_select.</summary>
    public const ulong DeviceFeature = 0x04;

    /// <summary>driver_feature_select (0x08), le32 RW.</summary>
    public const ulong DriverFeatureSelect = 0x08;

    /// <summary>driver_feature (0x0c), le32 RW.</summary>
    public const ulong DriverFeature = 0x0c;

    /// <summary>config_msix_vector (0x10), le16 RW: the MSI-X vector for configuration changes.</summary>
    public const ulong ConfigMsixVector = 0x10;

    /// <summary>num_queues (0x12), le16 R.</summary>
    public const ulong NumQueues = 0x12;

    /// <summary>device_status (0x14), u8 RW: writing 0 resets.</summary>
    public const ulong DeviceStatus = 0x14;

    /// <summary>config_generation (0x15), u8 R.</summary>
    public const ulong ConfigGeneration = 0x15;

    /// <summary>queue_select (0x16), le16 RW.</summary>
    public const ulong QueueSelect = 0x16;

    /// <summary>queue_size (0x18), le16 RW: the maximum after reset; the driver may write a smaller size.</summary>
    public const ulong QueueSize = 0x18;

    /// <summary>queue_msix_vector (0x1a), le16 RW.</summary>
    public const ulong QueueMsixVector = 0x1a;

    /// <summary>queue_enable (0x1c), le16 RW: the driver writes 1; it never writes 0.</summary>
    public const ulong QueueEnable = 0x1c;

    /// <summary>queue_notify_off (0x1e), le16 R: in units of notify_off_multiplier from the notify structure.</summary>
    public const ulong QueueNotifyOff = 0x1e;

    /// <summary>queue_desc (0x20), le64 RW: the descriptor area.</summary>
    public const ulong QueueDesc = 0x20;

    /// <summary>queue_driver (0x28), le64 RW: the driver area (available ring).</summary>
    public const ulong QueueDriver = 0x28;

    /// <summary>queue_device (0x30), le64 RW: the device area (used ring).</summary>
    public const ulong QueueDevice = 0x30;

    /// <summary>The size of the structure up to queue_device: what every modern device provides.</summary>
    public const ulong MinimumLength = 0x38;

    /// <summary>
    /// queue_notif_config_data (0x38, formerly queue_notify_data), le16 R, with VIRTIO_F_NOTIF_CONFIG_DATA: the value the
    /// driver writes in its available buffer notifications instead of the queue index. Ref: virtio v1.3 §4.1.4.3.
    /// </summary>
    public const ulong QueueNotifConfigData = 0x38;

    /// <summary>queue_reset (0x3a), le16 RW, with VIRTIO_F_RING_RESET.</summary>
    public const ulong QueueReset = 0x3a;
}
