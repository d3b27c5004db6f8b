namespace VirtioNet.Transports;

/// <summary>Why the device interrupted. Ref: virtio v1.2 §4.2.2 (InterruptStatus), §4.1.4.5 (ISR status).</summary>
[Flags]
public enum InterruptCause
{
    /// <summary>No cause pending (a shared or spurious interrupt).</summary>
    None = 0,

    /// <summary>Used Buffer Notification: a queue has new used buffers.</summary>
    UsedBuffer = 1,

    /// <summary>Configuration Change Notification: device configuration space changed.</summary>
    ConfigurationChange = 2,
}
