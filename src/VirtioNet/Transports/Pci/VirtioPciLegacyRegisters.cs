namespace VirtioNet.Transports.Pci;

/// <summary>
/// The legacy virtio-pci register layout at the start of I/O BAR 0 (what a transitional device also offers, and what
/// pre-1.0 drivers such as MINIX's speak). Guest-native (little-endian here) byte order. Ref: virtio v1.2 §4.1.4.8.
/// </summary>
internal static class VirtioPciLegacyRegisters
{
    /// <summary>Device Features bits 0:31 (0x00), 32-bit R (HostFeatures).</summary>
    public const ulong DeviceFeatures = 0x00;

    /// <summary>Driver Features bits 0:31 (0x04), 32-bit RW (GuestFeatures).</summary>
    public const ulong DriverFeatures = 0x04;

    /// <summary>Queue Address (0x08), 32-bit RW: the queue's page frame number in 4096-byte pages; 0 releases it.</summary>
    public const ulong QueueAddress = 0x08;

    /// <summary>queue_size (0x0c), 16-bit R: the device's fixed size of the selected queue; 0 when it does not exist.</summary>
    public const ulong QueueSize = 0x0c;

    /// <summary>queue_select (0x0e), 16-bit RW.</summary>
    public const ulong QueueSelect = 0x0e;

    /// <summary>Queue Notify (0x10), 16-bit RW: write a queue index.</summary>
    public const ulong QueueNotify = 0x10;

    /// <summary>Device Status (0x12), 8-bit RW: writing 0 resets.</summary>
    public const ulong DeviceStatus = 0x12;

    /// <summary>ISR Status (0x13), 8-bit R: reading clears it and lowers INTx.</summary>
    public const ulong IsrStatus = 0x13;

    /// <summary>config_msix_vector (0x14), 16-bit RW, present only while MSI-X is enabled.</summary>
    public const ulong ConfigMsixVector = 0x14;

    /// <summary>queue_msix_vector (0x16), 16-bit RW, present only while MSI-X is enabled.</summary>
    public const ulong QueueMsixVector = 0x16;

    /// <summary>Where device-specific configuration starts without MSI-X (20).</summary>
    public const ulong DeviceConfig = 0x14;

    /// <summary>Where device-specific configuration starts while MSI-X is enabled (24).</summary>
    public const ulong DeviceConfigWithMsix = 0x18;

    /// <summary>The page size Queue Address counts in, and the used ring's alignment (§2.7.2 legacy).</summary>
    public const int PageSize = 4096;
}
