namespace VirtioNet.Transports.Pci;

/// <summary>The <c>cfg_type</c> of a virtio structure capability. Ref: virtio v1.2 §4.1.4.</summary>
public enum VirtioPciCapabilityType : byte
{
    /// <summary>VIRTIO_PCI_CAP_COMMON_CFG (1): common configuration.</summary>
    CommonCfg = 1,

    /// <summary>VIRTIO_PCI_CAP_NOTIFY_CFG (2): notifications, with notify_off_multiplier.</summary>
    NotifyCfg = 2,

    /// <summary>VIRTIO_PCI_CAP_ISR_CFG (3): the ISR status byte.</summary>
    IsrCfg = 3,

    /// <summary>VIRTIO_PCI_CAP_DEVICE_CFG (4): device-specific configuration.</summary>
    DeviceCfg = 4,

    /// <summary>VIRTIO_PCI_CAP_PCI_CFG (5): an alternative access window through configuration space.</summary>
    PciCfg = 5,

    /// <summary>VIRTIO_PCI_CAP_SHARED_MEMORY_CFG (8): a shared memory region.</summary>
    SharedMemoryCfg = 8,

    /// <summary>VIRTIO_PCI_CAP_VENDOR_CFG (9): vendor data.</summary>
    VendorCfg = 9,
}
