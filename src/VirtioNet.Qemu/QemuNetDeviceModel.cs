namespace VirtioNet.Qemu;

/// <summary>Which QEMU device model the net device is, and so which transport the driver reaches it through.</summary>
public enum QemuNetDeviceModel
{
    /// <summary><c>virtio-net-device</c> on a virtio-mmio slot (the default).</summary>
    VirtioMmio,

    /// <summary><c>virtio-net-pci,disable-legacy=on</c>: a modern-only PCI function (1af4:1041).</summary>
    VirtioPciModern,

    /// <summary><c>virtio-net-pci</c> as QEMU makes it on a root bus: transitional (1af4:1000), both interfaces.</summary>
    VirtioPciTransitional,

    /// <summary><c>virtio-net-pci,disable-modern=on</c>: legacy interface only (1af4:1000, no virtio capabilities).</summary>
    VirtioPciLegacy,
}
