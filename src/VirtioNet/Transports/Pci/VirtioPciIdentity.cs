using VirtioNet.Core;
using VirtioNet.Platform;
using C = VirtioNet.Transports.Pci.PciConfigRegisters;

namespace VirtioNet.Transports.Pci;

/// <summary>Tells a virtio-pci function by its ids, and which virtio device type it is. Ref: virtio v1.2 §4.1.2.</summary>
public static class VirtioPciIdentity
{
    /// <summary>The PCI vendor id of every virtio device (Red Hat, Inc.).</summary>
    public const ushort VendorId = 0x1af4;

    /// <summary>The first transitional device id (0x1000 + type - 1 in practice; the type is in the Subsystem ID).</summary>
    public const ushort FirstTransitionalDeviceId = 0x1000;

    /// <summary>The last transitional device id.</summary>
    public const ushort LastTransitionalDeviceId = 0x103f;

    /// <summary>Modern device ids are this plus the virtio device type.</summary>
    public const ushort ModernDeviceIdBase = 0x1040;

    /// <summary>The last modern device id the spec reserves.</summary>
    public const ushort LastModernDeviceId = 0x107f;

    /// <summary>True when <paramref name="vendorId"/>:<paramref name="deviceId"/> names a virtio device.</summary>
    public static bool IsVirtio(ushort vendorId, ushort deviceId) =>
        vendorId == VendorId && deviceId >= FirstTransitionalDeviceId && deviceId <= LastModernDeviceId;

    /// <summary>True for a transitional device id (one that also offers the legacy interface).</summary>
    public static bool IsTransitional(ushort deviceId) => deviceId is >= FirstTransitionalDeviceId and <= LastTransitionalDeviceId;

    /// <summary>
    /// The virtio device type of a virtio function: device id - 0x1040 for a modern id, the Subsystem ID for a
    /// transitional one.
    /// </summary>
    public static uint DeviceType(ushort deviceId, ushort subsystemId) =>
        IsTransitional(deviceId) ? subsystemId : (uint)(deviceId - ModernDeviceIdBase);

    /// <summary>Reads the ids from configuration space and checks them; returns the virtio device type.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NotVirtio"/> when the function is not a virtio device.</exception>
    public static uint Check(IRegisterWindow config, string function, out ushort deviceId)
    {
        ArgumentNullException.ThrowIfNull(config);
        ushort vendor = config.Read16(C.VendorId);
        deviceId = config.Read16(C.DeviceId);
        if (!IsVirtio(vendor, deviceId))
        {
            throw new VirtioException(
                VirtioErrorReason.NotVirtio,
                $"PCI function {function} is {vendor:x4}:{deviceId:x4}, not a virtio device ({VendorId:x4}:{FirstTransitionalDeviceId:x4}-{LastModernDeviceId:x4}).");
        }

        return DeviceType(deviceId, config.Read16(C.SubsystemId));
    }

    /// <summary>Checks the ids of <paramref name="function"/> as a transport opening it does; returns the virtio device type.</summary>
    internal static uint Check(PciFunctionAccess function, out ushort deviceId)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Check(function.ConfigSpace, function.Name, out deviceId);
    }

    /// <summary>
    /// The first function of <paramref name="functions"/> that is a virtio device of type <paramref name="deviceType"/>
    /// (1 = network), whether transitional (1af4:1000 + subsystem id) or modern (1af4:1040 + type).
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.NoDevice"/>, listing what was found, when there is none.</exception>
    public static Discovery.Pci.PciFunction FindFirst(IReadOnlyList<Discovery.Pci.PciFunction> functions, uint deviceType, string busName)
    {
        ArgumentNullException.ThrowIfNull(functions);
        foreach (Discovery.Pci.PciFunction f in functions)
        {
            if (IsVirtio(f.VendorId, f.DeviceId) && DeviceType(f.DeviceId, f.SubsystemId) == deviceType)
            {
                return f;
            }
        }

        throw new VirtioException(
            VirtioErrorReason.NoDevice,
            $"No virtio {VirtioDeviceTypes.NameOf(deviceType)} function on {busName} (found: {string.Join(", ", functions.Select(f => f.ToString()))}).");
    }
}
