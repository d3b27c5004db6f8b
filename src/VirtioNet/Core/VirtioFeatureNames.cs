namespace VirtioNet.Core;

/// <summary>Spec names of the device-independent feature bits, for logs, dumps and JSON.</summary>
public static class VirtioFeatureNames
{
    private static readonly Dictionary<int, string> Names = new()
    {
        [24] = "VIRTIO_F_NOTIFY_ON_EMPTY",
        [27] = "VIRTIO_F_ANY_LAYOUT",
        [28] = "VIRTIO_F_INDIRECT_DESC",
        [29] = "VIRTIO_F_EVENT_IDX",
        [30] = "VIRTIO_F_BAD_FEATURE",
        [32] = "VIRTIO_F_VERSION_1",
        [33] = "VIRTIO_F_ACCESS_PLATFORM",
        [34] = "VIRTIO_F_RING_PACKED",
        [35] = "VIRTIO_F_IN_ORDER",
        [36] = "VIRTIO_F_ORDER_PLATFORM",
        [37] = "VIRTIO_F_SR_IOV",
        [38] = "VIRTIO_F_NOTIFICATION_DATA",
        [39] = "VIRTIO_F_NOTIF_CONFIG_DATA",
        [40] = "VIRTIO_F_RING_RESET",
        [41] = "VIRTIO_F_ADMIN_VQ",
    };

    /// <summary>The spec name of a device-independent bit, or null for a device-specific or unknown one.</summary>
    public static string? TryGetName(int bit) => Names.GetValueOrDefault(bit);

    /// <summary>
    /// Names every set bit of <paramref name="features"/>, lowest first; <paramref name="deviceSpecific"/>
    /// names the device type's own bits, and a bit neither knows is shown as <c>BIT_n</c>.
    /// </summary>
    public static IReadOnlyList<string> Describe(ulong features, Func<int, string?>? deviceSpecific = null)
    {
        var result = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((features & (1UL << bit)) == 0)
            {
                continue;
            }

            result.Add(TryGetName(bit) ?? deviceSpecific?.Invoke(bit) ?? $"BIT_{bit}");
        }

        return result;
    }

    /// <summary>As <see cref="Describe(ulong, Func{int, string?}?)"/> over all 128 bits (feature words 0 to 3).</summary>
    public static IReadOnlyList<string> Describe(VirtioFeatureSet features, Func<int, string?>? deviceSpecific = null)
    {
        var result = new List<string>();
        for (int bit = 0; bit < VirtioFeatureSet.BitCount; bit++)
        {
            if (features.Contains(bit))
            {
                result.Add(TryGetName(bit) ?? deviceSpecific?.Invoke(bit) ?? $"BIT_{bit}");
            }
        }

        return result;
    }
}
