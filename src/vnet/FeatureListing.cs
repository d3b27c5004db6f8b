using System.Globalization;
using System.Text.Json.Nodes;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Transports;

namespace VirtioNet.Cli;

/// <summary>
/// Feature bits as the commands list them: all 128 (feature words 0 to 3, virtio v1.4 §2.2), named with the driver's
/// spec names (<see cref="VirtioNetFeatureNames"/> for a network device, <see cref="VirtioFeatureNames"/> for any
/// other), a bit neither knows as <c>BIT_n</c>.
/// </summary>
internal static class FeatureListing
{
    /// <summary>Every set bit of <paramref name="features"/>, lowest first, named for a device of type <paramref name="deviceId"/>.</summary>
    public static IReadOnlyList<string> Names(VirtioFeatureSet features, uint deviceId = VirtioDeviceTypes.Network) =>
        deviceId == VirtioDeviceTypes.Network ? VirtioNetFeatureNames.Describe(features) : VirtioFeatureNames.Describe(features);

    /// <summary>Every set bit as "NAME (bit)", lowest first: the form the tables use, so a bit above 63 is visibly one.</summary>
    public static IReadOnlyList<string> NamesWithBits(VirtioFeatureSet features, uint deviceId = VirtioDeviceTypes.Network)
    {
        var result = new List<string>();
        for (int bit = 0; bit < VirtioFeatureSet.BitCount; bit++)
        {
            if (features.Contains(bit))
            {
                result.Add($"{Names(VirtioFeatureSet.FromBit(bit), deviceId)[0]} ({bit.ToString(CultureInfo.InvariantCulture)})");
            }
        }

        return result;
    }

    /// <summary>The set bits' numbers, lowest first.</summary>
    public static IReadOnlyList<int> Bits(VirtioFeatureSet features) =>
        [.. Enumerable.Range(0, VirtioFeatureSet.BitCount).Where(features.Contains)];

    /// <summary>The names as a JSON array of strings.</summary>
    public static JsonArray ToJson(VirtioFeatureSet features, uint deviceId = VirtioDeviceTypes.Network) =>
        new([.. Names(features, deviceId).Select(n => (JsonNode)n)]);

    /// <summary>
    /// What the device offers, all 128 bits: feature words 2 and 3 exist only on modern transports (a legacy device has
    /// one 32-bit word, §2.2 and §4.2.4).
    /// </summary>
    public static VirtioFeatureSet ReadOffered(IVirtioTransport transport) =>
        new(transport.ReadDeviceFeatures(), transport.IsLegacy ? 0 : transport.ReadDeviceFeaturesHigh());
}
