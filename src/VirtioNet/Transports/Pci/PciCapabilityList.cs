namespace VirtioNet.Transports.Pci;

/// <summary>What <see cref="VirtioPciCapabilityParser"/> found in one function's capability list.</summary>
public sealed class PciCapabilityList
{
    internal PciCapabilityList(IReadOnlyList<PciCapability> all, IReadOnlyList<VirtioPciCapability> virtio, MsixCapability? msix)
    {
        All = all;
        Virtio = virtio;
        Msix = msix;
    }

    /// <summary>Every capability in list order.</summary>
    public IReadOnlyList<PciCapability> All { get; }

    /// <summary>The virtio structure capabilities in list order (vendor capabilities whose BAR field is 0-5).</summary>
    public IReadOnlyList<VirtioPciCapability> Virtio { get; }

    /// <summary>The MSI-X capability, or null when the function has none.</summary>
    public MsixCapability? Msix { get; }

    /// <summary>True when the function offers the modern interface: common, notify and ISR structures are all present.</summary>
    public bool HasModernInterface =>
        Find(VirtioPciCapabilityType.CommonCfg) is not null
        && Find(VirtioPciCapabilityType.NotifyCfg) is not null
        && Find(VirtioPciCapabilityType.IsrCfg) is not null;

    /// <summary>
    /// The first capability of <paramref name="type"/>: §4.1.4 says the device may offer several and the driver should
    /// use the first one it can, in list order.
    /// </summary>
    public VirtioPciCapability? Find(VirtioPciCapabilityType type)
    {
        foreach (VirtioPciCapability cap in Virtio)
        {
            if (cap.Type == type)
            {
                return cap;
            }
        }

        return null;
    }
}
