using VirtioNet.Core;

namespace VirtioNet.Cli.Offloads;

/// <summary>
/// One offload as <c>vnet offloads</c> lists it: an ethtool-style name, the virtio feature bits behind it (any of the
/// 128), and, for a receive offload the device can change at run time, its bits in the le64 offloads bitmap of
/// VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET (virtio v1.4 §5.1.6.5.6.1; GUEST_UDP_TUNNEL_GSO (65) travels there as bit 46).
/// </summary>
/// <param name="Name">The name, ethtool's where ethtool has one.</param>
/// <param name="Features">The feature bits behind it: on when any of them is negotiated.</param>
/// <param name="GuestOffloadBits">Its bits in the CTRL_GUEST_OFFLOADS bitmap, or 0 for an offload only negotiation changes.</param>
internal sealed record Offload(string Name, VirtioFeatureSet Features, ulong GuestOffloadBits)
{
    /// <summary>True for a receive offload VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET changes after bring-up.</summary>
    public bool ChangesAtRunTime => GuestOffloadBits != 0;

    /// <summary>
    /// Its bitmap bits whose features were negotiated: below 64 a feature's bitmap bit has its own number; the tunnel
    /// offloads above 63 are one feature each, with a bitmap bit of their own (46, 47).
    /// </summary>
    public ulong NegotiatedGuestOffloadBits(VirtioFeatureSet negotiated) =>
        Features.High == 0 ? GuestOffloadBits & negotiated.Low : negotiated.ContainsAny(Features) ? GuestOffloadBits : 0;
}
