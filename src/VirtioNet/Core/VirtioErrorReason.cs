namespace VirtioNet.Core;

/// <summary>Why a <see cref="VirtioException"/> was thrown.</summary>
public enum VirtioErrorReason
{
    /// <summary>The register window does not hold a virtio device (bad magic value or vendor).</summary>
    NotVirtio,

    /// <summary>The transport reports a layout version this driver does not know.</summary>
    UnsupportedVersion,

    /// <summary>The device is a virtio device, but not of the type the driver expected.</summary>
    WrongDeviceType,

    /// <summary>The slot is empty (device id 0).</summary>
    NoDevice,

    /// <summary>The device did not keep FEATURES_OK set: it refused the feature subset the driver wrote.</summary>
    FeaturesRefused,

    /// <summary>A feature the driver cannot work without was not offered.</summary>
    RequiredFeatureMissing,

    /// <summary>A queue the driver needs is absent (QueueNumMax of 0) or already in use.</summary>
    QueueUnavailable,

    /// <summary>The device set DEVICE_NEEDS_RESET.</summary>
    DeviceNeedsReset,

    /// <summary>
    /// The device is being reset and set up again (<c>VirtioNetDevice.Recover</c>) by another thread; the call touched
    /// nothing and may be repeated once recovery is done.
    /// </summary>
    DeviceRecovering,

    /// <summary>The device wrote something impossible into a ring (id out of range, length past the buffer); the queue is broken.</summary>
    DeviceMisbehaved,

    /// <summary>A configuration value is out of the range the spec allows.</summary>
    InvalidConfiguration,

    /// <summary>The device did not finish a reset or a command in time.</summary>
    Timeout,

    /// <summary>The device answered a control command with an error (VIRTIO_NET_ERR): it refused the request.</summary>
    CommandRejected,

    /// <summary>The platform ran out of memory the device can reach.</summary>
    OutOfDmaMemory,

    /// <summary>The platform (machine, socket, process) failed beneath the driver.</summary>
    PlatformFailure,

    /// <summary>A device tree or another description of the machine is malformed.</summary>
    MalformedDescription,
}
