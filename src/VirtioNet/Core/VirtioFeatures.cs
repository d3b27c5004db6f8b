namespace VirtioNet.Core;

/// <summary>
/// Device-independent feature bits (reserved bits 24 to 41). Ref: virtio v1.2 §6 (Reserved Feature Bits).
/// Each constant is the bit's mask in the 64-bit feature word.
/// </summary>
public static class VirtioFeatures
{
    /// <summary>VIRTIO_F_NOTIFY_ON_EMPTY (24), legacy only: notify when the available ring runs empty. Ref: virtio v1.2 §6.3.</summary>
    public const ulong NotifyOnEmpty = 1UL << 24;

    /// <summary>VIRTIO_F_ANY_LAYOUT (27), legacy only: the device accepts any framing of headers and data. Ref: virtio v1.2 §2.7.4.3.</summary>
    public const ulong AnyLayout = 1UL << 27;

    /// <summary>VIRTIO_F_INDIRECT_DESC (28): the driver may use indirect descriptor tables. Ref: virtio v1.2 §2.7.5.3.</summary>
    public const ulong IndirectDesc = 1UL << 28;

    /// <summary>VIRTIO_F_EVENT_IDX (29): used_event and avail_event suppress notifications. Ref: virtio v1.2 §2.7.7, §2.7.10.</summary>
    public const ulong EventIdx = 1UL << 29;

    /// <summary>UNUSED (30), legacy: a bit a legacy device must never offer (QEMU calls it VIRTIO_F_BAD_FEATURE).</summary>
    public const ulong BadFeature = 1UL << 30;

    /// <summary>VIRTIO_F_VERSION_1 (32): the device complies with virtio 1.x (little-endian, FEATURES_OK). Ref: virtio v1.2 §6.</summary>
    public const ulong Version1 = 1UL << 32;

    /// <summary>VIRTIO_F_ACCESS_PLATFORM (33): the device accesses memory through the platform's IOMMU. Ref: virtio v1.2 §6.</summary>
    public const ulong AccessPlatform = 1UL << 33;

    /// <summary>VIRTIO_F_RING_PACKED (34): the packed virtqueue layout. Ref: virtio v1.2 §2.8.</summary>
    public const ulong RingPacked = 1UL << 34;

    /// <summary>VIRTIO_F_IN_ORDER (35): buffers are used in the order they were made available. Ref: virtio v1.2 §2.7.9.</summary>
    public const ulong InOrder = 1UL << 35;

    /// <summary>VIRTIO_F_ORDER_PLATFORM (36): memory accesses must be ordered as the platform orders them. Ref: virtio v1.2 §6.</summary>
    public const ulong OrderPlatform = 1UL << 36;

    /// <summary>VIRTIO_F_SR_IOV (37): the device supports single root I/O virtualization. Ref: virtio v1.2 §6.</summary>
    public const ulong SrIov = 1UL << 37;

    /// <summary>VIRTIO_F_NOTIFICATION_DATA (38): the driver passes extra data in notifications. Ref: virtio v1.2 §2.9.</summary>
    public const ulong NotificationData = 1UL << 38;

    /// <summary>VIRTIO_F_NOTIF_CONFIG_DATA (39): the driver uses a device-provided value in notifications. Ref: virtio v1.2 §6.</summary>
    public const ulong NotifConfigData = 1UL << 39;

    /// <summary>VIRTIO_F_RING_RESET (40): queues can be reset one by one. Ref: virtio v1.2 §2.6.1.</summary>
    public const ulong RingReset = 1UL << 40;

    /// <summary>VIRTIO_F_ADMIN_VQ (41): the device has an administration virtqueue. Ref: virtio v1.3 §2.12.</summary>
    public const ulong AdminVq = 1UL << 41;
}
