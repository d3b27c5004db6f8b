using System.Diagnostics;
using VirtioNet.Transports;

namespace VirtioNet.Core;

/// <summary>
/// The device initialization sequence, written once above every transport. Ref: virtio v1.2 §3.1.1 (Driver Requirements:
/// Device Initialization) and §3.1.2 (Legacy Interface: Device Initialization).
/// </summary>
public static class VirtioDeviceInitializer
{
    /// <summary>How long a reset may take before the device is declared stuck. QEMU completes it synchronously.</summary>
    public static readonly TimeSpan ResetTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Steps 1 to 6 of §3.1.1: checks the device type, resets, sets ACKNOWLEDGE and DRIVER, negotiates features,
    /// and (on modern transports) sets FEATURES_OK and re-reads it. Returns the negotiated feature set.
    /// The caller then sets up its queues (step 7) and calls <see cref="SetDriverOk"/> (step 8).
    /// </summary>
    /// <param name="transport">The device.</param>
    /// <param name="expectedDeviceId">The device type the caller drives (1 for network).</param>
    /// <param name="supported">Every feature bit the driver understands and wants.</param>
    /// <param name="required">Bits without which the driver cannot work; missing ones fail with <see cref="VirtioErrorReason.RequiredFeatureMissing"/>.</param>
    /// <param name="dropUnmetDependencies">
    /// The device type's feature dependencies: given the offered subset the driver would accept, returns it without the
    /// bits whose required features are not in it (§2.2.1: the driver must not accept a feature that requires one it did
    /// not accept). Null when the device type has none.
    /// </param>
    public static ulong Negotiate(IVirtioTransport transport, uint expectedDeviceId, ulong supported, ulong required = 0, Func<ulong, ulong>? dropUnmetDependencies = null)
        => Negotiate(
            transport,
            expectedDeviceId,
            VirtioFeatureSet.FromUInt64(supported),
            VirtioFeatureSet.FromUInt64(required),
            dropUnmetDependencies is null ? null : set => VirtioFeatureSet.FromUInt64(dropUnmetDependencies(set.Low))).Low;

    /// <summary>
    /// <see cref="Negotiate(IVirtioTransport, uint, ulong, ulong, Func{ulong, ulong}?)"/> over all 128 feature bits: on
    /// modern transports feature words 2 and 3 are read too, and written (before words 0 and 1) when the device offered
    /// bits there. A bit the device offers that is not in <paramref name="supported"/> is never accepted, whatever its
    /// number. Returns the negotiated set.
    /// </summary>
    /// <param name="transport">The device.</param>
    /// <param name="expectedDeviceId">The device type the caller drives (1 for network).</param>
    /// <param name="supported">Every feature bit the driver understands and wants.</param>
    /// <param name="required">Bits without which the driver cannot work (<see cref="VirtioFeatureSet.None"/> for none).</param>
    /// <param name="dropUnmetDependencies">The device type's feature dependencies (see the 64-bit overload), or null.</param>
    public static VirtioFeatureSet Negotiate(
        IVirtioTransport transport, uint expectedDeviceId, VirtioFeatureSet supported, VirtioFeatureSet required, Func<VirtioFeatureSet, VirtioFeatureSet>? dropUnmetDependencies)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ResetAndAcknowledge(transport, expectedDeviceId);

        // Step 4: read the device's features and write the subset the driver understands.
        // Legacy interfaces have no words above 0, so nothing beyond them is selected (§4.1.4.8, §4.2.4).
        var offered = new VirtioFeatureSet(transport.ReadDeviceFeatures(), transport.IsLegacy ? 0 : transport.ReadDeviceFeaturesHigh());
        VirtioFeatureSet wanted = supported;
        if (transport.IsLegacy)
        {
            // §3.1.2 and §6.3: a legacy interface has 32 feature bits and no VERSION_1.
            wanted &= 0xFFFF_FFFFUL & ~VirtioFeatures.Version1;
        }
        else if (!offered.ContainsAny(VirtioFeatures.Version1))
        {
            Fail(transport);
            throw new VirtioException(
                VirtioErrorReason.UnsupportedVersion,
                $"{transport.Description}: a modern transport whose device does not offer VIRTIO_F_VERSION_1 (offered {offered}).");
        }
        else
        {
            wanted |= VirtioFeatures.Version1;
        }

        // §6: VIRTIO_F_NOTIF_CONFIG_DATA's value is delivered by the transport (PCI's queue_notif_config_data); a
        // transport that has no such value cannot accept the feature.
        if (!transport.SupportsNotifConfigData)
        {
            wanted = wanted.Without(VirtioFeatures.NotifConfigData);
        }

        // §6.3: a device offering the legacy UNUSED bit (30) is broken; the driver never accepts it.
        VirtioFeatureSet accepted = (offered & wanted).Without(VirtioFeatures.BadFeature);

        // A device may offer a feature without the one it requires (QEMU offers HOST_TSO4 and HOST_USO with csum=off).
        if (dropUnmetDependencies is not null)
        {
            accepted = dropUnmetDependencies(accepted) & accepted;
        }

        VirtioFeatureSet missing = required & ~accepted;
        if (!missing.IsEmpty)
        {
            Fail(transport);
            throw new VirtioException(
                VirtioErrorReason.RequiredFeatureMissing,
                $"{transport.Description}: the device does not offer required features {missing} (offered {offered}).");
        }

        WriteFeatures(transport, offered, accepted);
        return accepted;
    }

    /// <summary>
    /// Steps 1 to 6 of §3.1.1 again, for a device being recovered after a reset (§2.1.2 DEVICE_NEEDS_RESET): the same
    /// checks, and exactly the features negotiated before, so that every queue, buffer and header the driver built
    /// for them stays valid. The caller then sets its queues up again and calls <see cref="SetDriverOk"/>.
    /// </summary>
    /// <param name="transport">The device.</param>
    /// <param name="expectedDeviceId">The device type the caller drives (1 for network).</param>
    /// <param name="negotiated">The features negotiated at bring-up, all 128 bits.</param>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.RequiredFeatureMissing"/> when the device no longer offers one of them, or
    /// <see cref="VirtioErrorReason.FeaturesRefused"/> when it does not keep FEATURES_OK; the device is left FAILED.
    /// </exception>
    public static void Renegotiate(IVirtioTransport transport, uint expectedDeviceId, VirtioFeatureSet negotiated)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ResetAndAcknowledge(transport, expectedDeviceId);
        var offered = new VirtioFeatureSet(transport.ReadDeviceFeatures(), transport.IsLegacy ? 0 : transport.ReadDeviceFeaturesHigh());
        VirtioFeatureSet missing = negotiated & ~offered;
        if (!missing.IsEmpty)
        {
            Fail(transport);
            throw new VirtioException(
                VirtioErrorReason.RequiredFeatureMissing,
                $"{transport.Description}: after its reset the device no longer offers the negotiated features {missing} (offered {offered}).");
        }

        WriteFeatures(transport, offered, negotiated);
    }

    // §3.1.1 steps 1 to 3, after checking the device is the one the driver drives.
    private static void ResetAndAcknowledge(IVirtioTransport transport, uint expectedDeviceId)
    {
        uint deviceId = transport.DeviceId;
        if (deviceId == 0)
        {
            throw new VirtioException(VirtioErrorReason.NoDevice, $"{transport.Description}: the slot is empty (device id 0).");
        }

        if (deviceId != expectedDeviceId)
        {
            throw new VirtioException(
                VirtioErrorReason.WrongDeviceType,
                $"{transport.Description}: expected virtio device id {expectedDeviceId}, found {deviceId} ({VirtioDeviceTypes.NameOf(deviceId)}).");
        }

        // §3.1.1 step 1: reset the device.
        Reset(transport);

        // Steps 2 and 3: the guest has noticed the device, and knows how to drive it.
        transport.WriteStatus(VirtioDeviceStatus.Acknowledge);
        transport.WriteStatus(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver);
    }

    // §3.1.1 steps 4 (the write) to 6.
    private static void WriteFeatures(IVirtioTransport transport, VirtioFeatureSet offered, VirtioFeatureSet accepted)
    {
        // Words 2 and 3 first and only when the device offered bits there: a device that folds selects above 1 onto 1
        // (QEMU's virtio-mmio before 10.1) then has word 1 rewritten right after.
        if (offered.High != 0)
        {
            transport.WriteDriverFeaturesHigh(accepted.High);
        }

        transport.WriteDriverFeatures(accepted.Low);

        if (!transport.IsLegacy)
        {
            // Steps 5 and 6: FEATURES_OK, then re-read it; a device that clears it refuses this subset.
            transport.WriteStatus(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver | VirtioDeviceStatus.FeaturesOk);
            VirtioDeviceStatus status = transport.ReadStatus();
            if ((status & VirtioDeviceStatus.FeaturesOk) == 0)
            {
                Fail(transport);
                throw new VirtioException(
                    VirtioErrorReason.FeaturesRefused,
                    $"{transport.Description}: the device refused the features {accepted} (FEATURES_OK did not stay set; status 0x{(byte)status:x2}).");
            }
        }
    }

    /// <summary>True when the device has set DEVICE_NEEDS_RESET (§2.1.2). One status read; never throws for the bit itself.</summary>
    public static bool NeedsReset(IVirtioTransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        return (transport.ReadStatus() & VirtioDeviceStatus.DeviceNeedsReset) != 0;
    }

    /// <summary>§3.1.1 step 8: the driver is ready; the device may now use its queues.</summary>
    public static void SetDriverOk(IVirtioTransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        VirtioDeviceStatus status = transport.ReadStatus();
        transport.WriteStatus(status | VirtioDeviceStatus.DriverOk);
        CheckHealthy(transport);
    }

    /// <summary>Sets FAILED: the driver has given up on the device (§2.1.1). Never throws.</summary>
    public static void Fail(IVirtioTransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        try
        {
            transport.WriteStatus(transport.ReadStatus() | VirtioDeviceStatus.Failed);
        }
        catch (VirtioException)
        {
            // The platform under the device is gone; there is nobody left to tell.
        }
    }

    /// <summary>Writes 0 to the status and waits until the device reads back 0 (§4.2.3.1, §4.1.4.3.2).</summary>
    public static void Reset(IVirtioTransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        transport.WriteStatus(VirtioDeviceStatus.Reset);
        var clock = Stopwatch.StartNew();
        while (transport.ReadStatus() != VirtioDeviceStatus.Reset)
        {
            if (clock.Elapsed > ResetTimeout)
            {
                throw new VirtioException(VirtioErrorReason.Timeout, $"{transport.Description}: the device did not complete a reset within {ResetTimeout.TotalSeconds} s.");
            }

            Thread.Sleep(1);
        }
    }

    /// <summary>Throws <see cref="VirtioErrorReason.DeviceNeedsReset"/> when the device has set DEVICE_NEEDS_RESET (§2.1.2).</summary>
    public static void CheckHealthy(IVirtioTransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        VirtioDeviceStatus status = transport.ReadStatus();
        if ((status & VirtioDeviceStatus.DeviceNeedsReset) != 0)
        {
            throw new VirtioException(VirtioErrorReason.DeviceNeedsReset, $"{transport.Description}: the device set DEVICE_NEEDS_RESET (status 0x{(byte)status:x2}).");
        }
    }
}
