using VirtioNet.Core;
using VirtioNet.Net;

namespace VirtioNet.Cli.Offloads;

/// <summary>
/// The offloads <c>vnet offloads</c> knows, over all 128 feature bits, and the pure rules of listing and changing them:
/// what is on, offered and fixed, and which <c>--set</c> requests the device cannot honour.
/// </summary>
internal static class OffloadCatalog
{
    // Receive segmentation offloads Linux shows as one "rx-gro-hw" (virtio_net.c toggles them together).
    private static readonly VirtioFeatureSet GroHw =
        VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestEcn | VirtioNetFeatures.GuestUfo |
        VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;

    /// <summary>
    /// Every offload, in ethtool -k's order. The names are ethtool's; ethtool folds the receive UDP tunnel offloads (65,
    /// 66) into rx-gro-hw, which would hide them, so they have rows of their own named after tx-udp_tnl-*.
    /// </summary>
    public static IReadOnlyList<Offload> All { get; } =
    [
        new("rx-checksumming", VirtioNetFeatures.GuestCsum, VirtioNetFeatures.GuestCsum),
        new("tx-checksumming", VirtioNetFeatures.Csum, 0),
        new("tcp-segmentation-offload", VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6, 0),
        new("tx-tcp-ecn-segmentation", VirtioNetFeatures.HostEcn, 0),
        new("tx-udp_tnl-segmentation", VirtioNetFeatures.HostUdpTunnelGso, 0),
        new("tx-udp_tnl-csum-segmentation", VirtioNetFeatures.HostUdpTunnelGsoCsum, 0),
        new("tx-udp-segmentation", VirtioNetFeatures.HostUso, 0),
        new("rx-gro-hw", GroHw, GroHw.Low),
        new("rx-udp_tnl-gro-hw", VirtioNetFeatures.GuestUdpTunnelGso, VirtioNetFeatures.GuestUdpTunnelGsoOffload),
        new("rx-udp_tnl-csum-gro-hw", VirtioNetFeatures.GuestUdpTunnelGsoCsum, VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload),
        new("receive-hashing", VirtioNetFeatures.HashReport, 0),
        new("rx-vlan-filter", VirtioNetFeatures.CtrlVlan, 0),
    ];

    /// <summary>Reads <c>--set NAME=on|off</c> values; an unknown name is a usage error, before any machine starts.</summary>
    public static IReadOnlyList<(Offload Offload, bool On)> ParseChanges(IEnumerable<string> settings)
    {
        var changes = new List<(Offload, bool)>();
        foreach (string text in settings)
        {
            (string name, bool on) = Commands.OnOff.ParseSetting(text, "--set");
            Offload offload = All.FirstOrDefault(o => o.Name == name)
                ?? throw new CliException($"--set: '{name}' is not an offload (use {string.Join(", ", All.Select(o => o.Name))}).");
            changes.Add((offload, on));
        }

        return changes;
    }

    /// <summary>The features to leave out of negotiation: offloads only negotiation changes, turned off.</summary>
    public static VirtioFeatureSet DisabledByNegotiation(IEnumerable<(Offload Offload, bool On)> changes) =>
        changes.Where(c => !c.Offload.ChangesAtRunTime && !c.On).Aggregate(VirtioFeatureSet.None, (bits, c) => bits | c.Offload.Features);

    /// <summary>
    /// Why the device cannot honour <paramref name="changes"/>, in one sentence, or null when it can. An offload the
    /// device does not offer cannot be changed either way (ethtool's "[fixed]"); one turned on must have been negotiated.
    /// Every request is checked before any is carried out, so a refused set changes nothing.
    /// </summary>
    public static string? Refusal(IReadOnlyList<(Offload Offload, bool On)> changes, VirtioFeatureSet offered, VirtioFeatureSet negotiated)
    {
        var notOffered = changes.Where(c => !offered.ContainsAny(c.Offload.Features)).ToList();
        if (notOffered.Count > 0)
        {
            VirtioFeatureSet bits = notOffered.Aggregate(VirtioFeatureSet.None, (set, c) => set | c.Offload.Features);
            return $"--set {string.Join(' ', notOffered.Select(c => $"{c.Offload.Name}={(c.On ? "on" : "off")}"))}: not offered by the device " +
                $"({string.Join(", ", FeatureListing.NamesWithBits(bits))}); {(notOffered.Select(c => c.Offload).Distinct().Count() == 1 ? "it stays" : "they stay")} off [not offered].";
        }

        var notNegotiated = changes.Where(c => c.On && !negotiated.ContainsAny(c.Offload.Features)).ToList();
        if (notNegotiated.Count > 0)
        {
            VirtioFeatureSet bits = notNegotiated.Aggregate(VirtioFeatureSet.None, (set, c) => set | c.Offload.Features);
            return $"--set {string.Join(' ', notNegotiated.Select(c => $"{c.Offload.Name}=on"))}: offered but not negotiated " +
                $"({string.Join(", ", FeatureListing.NamesWithBits(bits & offered))}; a feature it depends on is missing).";
        }

        return null;
    }

    /// <summary>Every offload's state from the device's offered and negotiated features and its guest offloads in effect.</summary>
    /// <param name="offered">What the device offers (all 128 bits).</param>
    /// <param name="negotiated">What was negotiated.</param>
    /// <param name="guestOffloads">The CTRL_GUEST_OFFLOADS bitmap in effect (<see cref="VirtioNetControl.GuestOffloads"/>).</param>
    public static IReadOnlyList<OffloadState> States(VirtioFeatureSet offered, VirtioFeatureSet negotiated, ulong guestOffloads)
    {
        bool control = negotiated.ContainsAny(VirtioNetFeatures.CtrlGuestOffloads);
        return
        [
            .. All.Select(o =>
            {
                bool isOffered = offered.ContainsAny(o.Features);
                bool isNegotiated = negotiated.ContainsAny(o.Features);
                bool on = o.ChangesAtRunTime ? isNegotiated && (guestOffloads & o.GuestOffloadBits) != 0 : isNegotiated;
                return new OffloadState(o, on, isOffered, !isOffered || !o.ChangesAtRunTime || !control || !isNegotiated);
            }),
        ];
    }
}
