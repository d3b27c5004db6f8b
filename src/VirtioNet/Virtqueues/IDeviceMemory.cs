namespace VirtioNet.Virtqueues;

/// <summary>
/// How the device side of a ring reaches memory by device address: the seam between <see cref="DeviceSplitRing"/> or
/// <see cref="DevicePackedRing"/> and whatever maps the driver's memory (a vhost-user frontend's shared region, an IOMMU,
/// a test's allocator).
/// </summary>
/// <remarks>
/// Every address a device-side ring uses comes from the driver, which the device must not trust: a descriptor may
/// name any address and length. The ring asks here before every access and refuses the chain when the answer is no.
/// </remarks>
public interface IDeviceMemory
{
    /// <summary>
    /// The CPU address of the <paramref name="length"/> bytes at <paramref name="deviceAddress"/>, or false when the
    /// range does not lie entirely inside memory the device may access.
    /// </summary>
    /// <param name="deviceAddress">The address as the driver wrote it into a ring.</param>
    /// <param name="length">Bytes from there (0 is allowed and is checked like any other length).</param>
    /// <param name="address">The CPU address of the first byte, valid while the memory stays mapped.</param>
    bool TryTranslate(ulong deviceAddress, ulong length, out nint address);
}
