namespace VirtioNet.Service;

/// <summary>Why the service dropped a frame between the kernel and the device; each counted apart.</summary>
internal enum DropReason
{
    /// <summary>The kernel handed over a frame shorter than an Ethernet header, or a header shorter than the TAP's.</summary>
    KernelRunt,

    /// <summary>The kernel asked for an offload the frame cannot carry (not TCP/UDP over IPv4/IPv6, UFO, a checksum outside the frame).</summary>
    KernelBadOffload,

    /// <summary>The kernel handed over a frame longer than the device takes and asked for no segmentation.</summary>
    KernelOversize,

    /// <summary>The driver refused a frame the checks above let through (its own checks are stricter).</summary>
    DeviceRefused,

    /// <summary>Writing to the TAP failed because the interface is down (EIO).</summary>
    InterfaceDown,

    /// <summary>The kernel refused a frame written to the TAP (EINVAL: a header it does not accept; ENOMEM/ENOBUFS).</summary>
    KernelRefused,

    /// <summary>Reading from the TAP failed with an error other than "empty".</summary>
    TapReadError,
}
