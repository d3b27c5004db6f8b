using VirtioNet.Core;
using VirtioNet.Platform;

namespace VirtioNet.Transports;

/// <summary>
/// The primitives a virtio transport (virtio-mmio, virtio-pci, vhost-user) offers. The initialization sequence,
/// feature negotiation and queues are written once above this interface (<see cref="VirtioDeviceInitializer"/>),
/// so a device driver never knows which transport it drives. Ref: virtio v1.2 §4.
/// </summary>
public interface IVirtioTransport : IDisposable
{
    /// <summary>A short description for logs and dumps, e.g. "virtio-mmio v1 @ 0x10008000".</summary>
    string Description { get; }

    /// <summary>True when the transport uses a legacy (pre-1.0) interface: no FEATURES_OK, 32 feature bits, page-aligned contiguous rings.</summary>
    bool IsLegacy { get; }

    /// <summary>The virtio device id (1 = network). 0 means an empty slot. Ref: virtio v1.2 §5.</summary>
    uint DeviceId { get; }

    /// <summary>The subsystem vendor id the device reports.</summary>
    uint VendorId { get; }

    /// <summary>
    /// The alignment of the used ring inside a queue's contiguous block, for legacy transports (4096);
    /// 0 for transports that take the three ring addresses separately.
    /// </summary>
    int LegacyQueueAlign { get; }

    /// <summary>The interrupt line this device raises, or null where the platform offers none (poll only).</summary>
    IInterruptLine? Interrupt { get; }

    /// <summary>Reads the device status field.</summary>
    VirtioDeviceStatus ReadStatus();

    /// <summary>Writes the device status field.</summary>
    void WriteStatus(VirtioDeviceStatus status);

    /// <summary>Reads feature bits 0 to 63 the device offers, feature words 0 and 1 (word 1 reads 0 on legacy transports).</summary>
    ulong ReadDeviceFeatures();

    /// <summary>Writes the feature bits 0 to 63 the driver accepts (feature words 0 and 1).</summary>
    void WriteDriverFeatures(ulong features);

    /// <summary>
    /// Reads feature bits 64 to 127 the device offers (bit 64 in bit 0): feature words 2 and 3, selected by writing 2 and
    /// 3 to virtio-pci's device_feature_select or virtio-mmio's DeviceFeaturesSel. Ref: virtio v1.4 §2.2, §4.1.4.3, §4.2.2.
    /// </summary>
    /// <remarks>
    /// The default returns 0 without touching the device: legacy interfaces have one 32-bit feature word (§4.1.4.8,
    /// §4.2.4) and vhost-user's VHOST_USER_GET_FEATURES carries 64 bits.
    /// </remarks>
    ulong ReadDeviceFeaturesHigh() => 0;

    /// <summary>
    /// Writes feature bits 64 to 127 the driver accepts (driver_feature_select / DriverFeaturesSel = 2 and 3). The
    /// initializer calls it only when the device offered bits there, and before <see cref="WriteDriverFeatures"/>.
    /// </summary>
    /// <remarks>
    /// The default, for transports without words 2 and 3, accepts only 0 (nothing there can have been offered) and throws
    /// <see cref="NotSupportedException"/> otherwise.
    /// </remarks>
    void WriteDriverFeaturesHigh(ulong features)
    {
        if (features != 0)
        {
            throw new NotSupportedException($"{Description} has no feature bits above 63 (feature words 2 and 3).");
        }
    }

    /// <summary>The largest size of queue <paramref name="queueIndex"/>; 0 when the queue does not exist.</summary>
    int GetQueueSizeMax(int queueIndex);

    /// <summary>True when queue <paramref name="queueIndex"/> is already live (QueueReady, or a non-zero QueuePFN).</summary>
    bool IsQueueActive(int queueIndex);

    /// <summary>
    /// Tells the device where queue <paramref name="queueIndex"/> lives and makes it live.
    /// For legacy transports the three areas must form one block laid out as §2.7.2 (legacy) requires,
    /// with <paramref name="descriptorArea"/> aligned to a page.
    /// </summary>
    void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea);

    /// <summary>Takes queue <paramref name="queueIndex"/> out of use (modern: QueueReady = 0 where allowed; legacy: PFN = 0).</summary>
    void DeactivateQueue(int queueIndex);

    /// <summary>Sends an available buffer notification for queue <paramref name="queueIndex"/>. Ref: virtio v1.2 §2.9.</summary>
    void Notify(int queueIndex);

    /// <summary>
    /// Sends an available buffer notification carrying <paramref name="notificationData"/> (the queue's
    /// <see cref="Virtqueues.IVirtqueue.GetNotificationData"/>), as VIRTIO_F_NOTIFICATION_DATA requires: a 32-bit write
    /// of the value where <see cref="Notify(int)"/> writes the queue index. Ref: virtio v1.2 §2.9, §4.1.5.2, §4.2.3.3.
    /// </summary>
    /// <remarks>
    /// The default, for transports that cannot carry the data (legacy interfaces, vhost-user's eventfd kicks), throws
    /// <see cref="NotSupportedException"/>; such a transport never lets the feature be negotiated.
    /// </remarks>
    void Notify(int queueIndex, uint notificationData)
        => throw new NotSupportedException($"{Description} cannot carry notification data (VIRTIO_F_NOTIFICATION_DATA).");

    /// <summary>
    /// True when the transport has a per-queue notification value from the device for VIRTIO_F_NOTIF_CONFIG_DATA (PCI's
    /// queue_notif_config_data) and uses it in <see cref="Notify(int)"/> and <see cref="Notify(int, uint)"/> once the
    /// feature is accepted. Ref: virtio v1.3 §2.9, §4.1.5.2, §6.
    /// </summary>
    /// <remarks>
    /// The default is false: the spec defines the value for PCI only (virtio-mmio's QueueNotify carries the queue index,
    /// §4.2.3.3; vhost-user kicks an eventfd), and a transport without it must not let the feature be negotiated.
    /// </remarks>
    bool SupportsNotifConfigData => false;

    /// <summary>
    /// Resets queue <paramref name="queueIndex"/> alone (VIRTIO_F_RING_RESET) and waits until the device reports the
    /// reset complete: the device then no longer reads or writes the queue's memory, forgets its indexes, and the
    /// queue can be set up again with <see cref="ActivateQueue"/>; the other queues keep running. Ref: virtio v1.2 §2.6.1.
    /// </summary>
    /// <remarks>
    /// The default, for transports without a per-queue reset (legacy interfaces, vhost-user), throws
    /// <see cref="NotSupportedException"/>.
    /// </remarks>
    /// <exception cref="Core.VirtioException">
    /// With <see cref="Core.VirtioErrorReason.DeviceMisbehaved"/> when the device does not finish the reset or leaves the queue enabled.
    /// </exception>
    void ResetQueue(int queueIndex)
        => throw new NotSupportedException($"{Description} has no per-queue reset (VIRTIO_F_RING_RESET).");

    /// <summary>Reads and acknowledges the pending interrupt causes, which lowers a level-triggered line.</summary>
    InterruptCause ReadAndAcknowledgeInterrupt();

    /// <summary>The configuration generation counter (constant on legacy transports). Ref: virtio v1.2 §2.5.1.</summary>
    uint ReadConfigGeneration();

    /// <summary>Reads a byte of device-specific configuration space.</summary>
    byte ReadConfig8(int offset);

    /// <summary>Reads a 16-bit field of device-specific configuration space (little-endian on modern devices).</summary>
    ushort ReadConfig16(int offset);

    /// <summary>Reads a 32-bit field of device-specific configuration space.</summary>
    uint ReadConfig32(int offset);

    /// <summary>Writes a byte of device-specific configuration space (legacy MAC writes).</summary>
    void WriteConfig8(int offset, byte value);
}
