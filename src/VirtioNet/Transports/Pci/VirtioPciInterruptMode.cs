namespace VirtioNet.Transports.Pci;

/// <summary>How a virtio-pci device signals the driver. Ref: virtio v1.2 §4.1.4.5, §4.1.5.3, §4.1.5.4.</summary>
public enum VirtioPciInterruptMode
{
    /// <summary>No interrupt: the driver polls.</summary>
    None,

    /// <summary>The INTx# pin, routed by the platform; the ISR read acknowledges it and lowers the line.</summary>
    Intx,

    /// <summary>MSI-X with one vector (0) for configuration changes and every queue.</summary>
    MsixShared,

    /// <summary>MSI-X with vector 0 for configuration changes and one vector per queue (as far as the table reaches).</summary>
    MsixPerQueue,
}
