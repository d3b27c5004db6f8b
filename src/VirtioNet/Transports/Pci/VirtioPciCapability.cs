namespace VirtioNet.Transports.Pci;

/// <summary>
/// One virtio structure capability (<c>struct virtio_pci_cap</c>, or <c>virtio_pci_notify_cap</c> for
/// <see cref="VirtioPciCapabilityType.NotifyCfg"/>) as read from configuration space. Ref: virtio v1.2 §4.1.4.
/// </summary>
/// <param name="Type">cfg_type: which structure this is.</param>
/// <param name="Bar">bar: the BAR (0-5) that holds the structure; other values are reserved and the capability ignored.</param>
/// <param name="Id">id: tells apart several capabilities of one type.</param>
/// <param name="Offset">offset: where the structure starts inside the BAR.</param>
/// <param name="Length">length: the structure's length in bytes.</param>
/// <param name="ConfigOffset">Where the capability itself sits in configuration space.</param>
/// <param name="NotifyOffMultiplier">notify_off_multiplier for a notify capability, else 0.</param>
public sealed record VirtioPciCapability(
    VirtioPciCapabilityType Type,
    byte Bar,
    byte Id,
    uint Offset,
    uint Length,
    int ConfigOffset,
    uint NotifyOffMultiplier)
{
    /// <summary>The spec's name of the structure, e.g. "common" for VIRTIO_PCI_CAP_COMMON_CFG.</summary>
    public string TypeName => Type switch
    {
        VirtioPciCapabilityType.CommonCfg => "common",
        VirtioPciCapabilityType.NotifyCfg => "notify",
        VirtioPciCapabilityType.IsrCfg => "isr",
        VirtioPciCapabilityType.DeviceCfg => "device",
        VirtioPciCapabilityType.PciCfg => "pci-cfg",
        VirtioPciCapabilityType.SharedMemoryCfg => "shared-memory",
        VirtioPciCapabilityType.VendorCfg => "vendor",
        _ => $"type-{(byte)Type}",
    };

    /// <inheritdoc />
    public override string ToString() =>
        $"{TypeName} bar{Bar}+0x{Offset:x} len 0x{Length:x}" + (Type == VirtioPciCapabilityType.NotifyCfg ? $" mult {NotifyOffMultiplier}" : "");
}
