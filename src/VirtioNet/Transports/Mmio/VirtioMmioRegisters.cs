namespace VirtioNet.Transports.Mmio;

/// <summary>
/// The virtio-mmio register map: offsets in the device's register window. Ref: virtio v1.2 §4.2.2 (MMIO Device Register
/// Layout) and §4.2.4 (Legacy interface). R = read-only, W = write-only, RW = read-write.
/// </summary>
internal static class VirtioMmioRegisters
{
    /// <summary>MagicValue (0x000), R: 0x74726976, "virt" in little-endian.</summary>
    public const ulong MagicValue = 0x000;

    /// <summary>Version (0x004), R: 2 for the modern layout, 1 for the legacy one.</summary>
    public const ulong Version = 0x004;

    /// <summary>DeviceID (0x008), R: the virtio device id; 0 for an empty slot.</summary>
    public const ulong DeviceId = 0x008;

    /// <summary>VendorID (0x00c), R.</summary>
    public const ulong VendorId = 0x00c;

    /// <summary>DeviceFeatures (0x010), R: the 32 feature bits selected by DeviceFeaturesSel (legacy: HostFeatures).</summary>
    public const ulong DeviceFeatures = 0x010;

    /// <summary>DeviceFeaturesSel (0x014), W: which 32-bit word DeviceFeatures shows (legacy: HostFeaturesSel).</summary>
    public const ulong DeviceFeaturesSel = 0x014;

    /// <summary>DriverFeatures (0x020), W: the 32 accepted bits selected by DriverFeaturesSel (legacy: GuestFeatures).</summary>
    public const ulong DriverFeatures = 0x020;

    /// <summary>DriverFeaturesSel (0x024), W (legacy: GuestFeaturesSel).</summary>
    public const ulong DriverFeaturesSel = 0x024;

    /// <summary>GuestPageSize (0x028), W, legacy only: the page size QueuePFN counts in. Ref: virtio v1.2 §4.2.4.</summary>
    public const ulong GuestPageSize = 0x028;

    /// <summary>QueueSel (0x030), W: which queue the per-queue registers refer to.</summary>
    public const ulong QueueSel = 0x030;

    /// <summary>QueueNumMax (0x034), R: the largest queue size; 0 when the queue does not exist.</summary>
    public const ulong QueueNumMax = 0x034;

    /// <summary>QueueNum (0x038), W: the queue size the driver uses.</summary>
    public const ulong QueueNum = 0x038;

    /// <summary>QueueAlign (0x03c), W, legacy only: the alignment of the used ring.</summary>
    public const ulong QueueAlign = 0x03c;

    /// <summary>QueuePFN (0x040), RW, legacy only: the queue's page number; writing it activates the queue, 0 releases it.</summary>
    public const ulong QueuePfn = 0x040;

    /// <summary>QueueReady (0x044), RW, modern only.</summary>
    public const ulong QueueReady = 0x044;

    /// <summary>QueueNotify (0x050), W: the index of the queue with new available buffers.</summary>
    public const ulong QueueNotify = 0x050;

    /// <summary>InterruptStatus (0x060), R: bit 0 used buffer, bit 1 configuration change.</summary>
    public const ulong InterruptStatus = 0x060;

    /// <summary>InterruptACK (0x064), W: the causes the driver has handled.</summary>
    public const ulong InterruptAck = 0x064;

    /// <summary>Status (0x070), RW: the device status; writing 0 resets.</summary>
    public const ulong Status = 0x070;

    /// <summary>QueueDescLow (0x080), W, modern only.</summary>
    public const ulong QueueDescLow = 0x080;

    /// <summary>QueueDescHigh (0x084), W, modern only.</summary>
    public const ulong QueueDescHigh = 0x084;

    /// <summary>QueueDriverLow (0x090), W, modern only (QueueAvailLow in older texts).</summary>
    public const ulong QueueDriverLow = 0x090;

    /// <summary>QueueDriverHigh (0x094), W, modern only.</summary>
    public const ulong QueueDriverHigh = 0x094;

    /// <summary>QueueDeviceLow (0x0a0), W, modern only (QueueUsedLow in older texts).</summary>
    public const ulong QueueDeviceLow = 0x0a0;

    /// <summary>QueueDeviceHigh (0x0a4), W, modern only.</summary>
    public const ulong QueueDeviceHigh = 0x0a4;

    /// <summary>
    /// QueueReset (0x0c0), RW, modern only, with VIRTIO_F_RING_RESET: writing 1 resets the selected queue; it reads 1
    /// until the reset is complete, then 0 together with QueueReady. Ref: virtio v1.2 §4.2.2.
    /// </summary>
    public const ulong QueueReset = 0x0c0;

    /// <summary>ConfigGeneration (0x0fc), R, modern only.</summary>
    public const ulong ConfigGeneration = 0x0fc;

    /// <summary>Config (0x100+): the device-specific configuration space.</summary>
    public const ulong Config = 0x100;

    /// <summary>The magic value "virt".</summary>
    public const uint Magic = 0x74726976;

    /// <summary>The size of one register window as the spec's examples and QEMU use it.</summary>
    public const ulong WindowLength = 0x200;
}
