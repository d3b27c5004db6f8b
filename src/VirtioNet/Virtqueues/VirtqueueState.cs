namespace VirtioNet.Virtqueues;

/// <summary>A snapshot of a queue for dumps: what the driver holds and what it last saw of the device.</summary>
public sealed record VirtqueueState
{
    /// <summary>The queue index on the device.</summary>
    public required int QueueIndex { get; init; }

    /// <summary>"split" or "packed".</summary>
    public required string Layout { get; init; }

    /// <summary>Number of descriptors.</summary>
    public required int Size { get; init; }

    /// <summary>The driver's available index (its shadow of avail.idx).</summary>
    public required ushort AvailableIndex { get; init; }

    /// <summary>used.idx as the device last wrote it.</summary>
    public required ushort DeviceUsedIndex { get; init; }

    /// <summary>The next used entry the driver will read.</summary>
    public required ushort LastUsedIndex { get; init; }

    /// <summary>Descriptors on the free list.</summary>
    public required int FreeDescriptors { get; init; }

    /// <summary>Chains made available and not yet returned.</summary>
    public required int Outstanding { get; init; }

    /// <summary>True when the driver asked the device not to interrupt.</summary>
    public required bool InterruptsSuppressed { get; init; }

    /// <summary>True when the device asked the driver not to notify (VIRTQ_USED_F_NO_NOTIFY).</summary>
    public required bool NotificationsSuppressed { get; init; }

    /// <summary>used_event as written by the driver (EVENT_IDX only, else null).</summary>
    public ushort? UsedEvent { get; init; }

    /// <summary>avail_event as written by the device (EVENT_IDX only, else null).</summary>
    public ushort? AvailEvent { get; init; }

    /// <summary>Device addresses of the descriptor, driver and device areas.</summary>
    public required ulong DescriptorArea { get; init; }

    /// <summary>The driver area (available ring).</summary>
    public required ulong DriverArea { get; init; }

    /// <summary>The device area (used ring).</summary>
    public required ulong DeviceArea { get; init; }

    /// <summary>Why the queue is broken, or null.</summary>
    public string? BrokenReason { get; init; }

    /// <summary>
    /// IN_ORDER only (else null): chains the device returned without a used entry of their own, covered by a later chain's
    /// entry in a batch. Ref: virtio v1.2 §2.7.9, §2.8.9.
    /// </summary>
    public long? ChainsReturnedInBatches { get; init; }

    /// <summary>Packed only (else null): the Driver Ring Wrap Counter, flipped each time the driver passes the end of the ring. Ref: virtio v1.2 §2.8.1.</summary>
    public bool? AvailWrapCounter { get; init; }

    /// <summary>Packed only (else null): the wrap counter the driver expects in the next used descriptor. Ref: virtio v1.2 §2.8.1.</summary>
    public bool? UsedWrapCounter { get; init; }

    /// <summary>Packed only (else null): desc_event_flags of the Driver Event Suppression structure, as the driver wrote it. Ref: virtio v1.2 §2.8.10.</summary>
    public ushort? DriverEventFlags { get; init; }

    /// <summary>Packed only (else null): desc_event_flags of the Device Event Suppression structure, as the device wrote it. Ref: virtio v1.2 §2.8.10.</summary>
    public ushort? DeviceEventFlags { get; init; }
}
