using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>Spec names of the network device's feature bits. Ref: virtio v1.2 §5.1.3.</summary>
public static class VirtioNetFeatureNames
{
    private static readonly Dictionary<int, string> Names = new()
    {
        [0] = "VIRTIO_NET_F_CSUM",
        [1] = "VIRTIO_NET_F_GUEST_CSUM",
        [2] = "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS",
        [3] = "VIRTIO_NET_F_MTU",
        [5] = "VIRTIO_NET_F_MAC",
        [6] = "VIRTIO_NET_F_GSO",
        [7] = "VIRTIO_NET_F_GUEST_TSO4",
        [8] = "VIRTIO_NET_F_GUEST_TSO6",
        [9] = "VIRTIO_NET_F_GUEST_ECN",
        [10] = "VIRTIO_NET_F_GUEST_UFO",
        [11] = "VIRTIO_NET_F_HOST_TSO4",
        [12] = "VIRTIO_NET_F_HOST_TSO6",
        [13] = "VIRTIO_NET_F_HOST_ECN",
        [14] = "VIRTIO_NET_F_HOST_UFO",
        [15] = "VIRTIO_NET_F_MRG_RXBUF",
        [16] = "VIRTIO_NET_F_STATUS",
        [17] = "VIRTIO_NET_F_CTRL_VQ",
        [18] = "VIRTIO_NET_F_CTRL_RX",
        [19] = "VIRTIO_NET_F_CTRL_VLAN",
        [20] = "VIRTIO_NET_F_CTRL_RX_EXTRA",
        [21] = "VIRTIO_NET_F_GUEST_ANNOUNCE",
        [22] = "VIRTIO_NET_F_MQ",
        [23] = "VIRTIO_NET_F_CTRL_MAC_ADDR",
        [50] = "VIRTIO_NET_F_DEVICE_STATS",
        [51] = "VIRTIO_NET_F_HASH_TUNNEL",
        [52] = "VIRTIO_NET_F_VQ_NOTF_COAL",
        [53] = "VIRTIO_NET_F_NOTF_COAL",
        [54] = "VIRTIO_NET_F_GUEST_USO4",
        [55] = "VIRTIO_NET_F_GUEST_USO6",
        [56] = "VIRTIO_NET_F_HOST_USO",
        [57] = "VIRTIO_NET_F_HASH_REPORT",
        [59] = "VIRTIO_NET_F_GUEST_HDRLEN",
        [60] = "VIRTIO_NET_F_RSS",
        [61] = "VIRTIO_NET_F_RSC_EXT",
        [62] = "VIRTIO_NET_F_STANDBY",
        [63] = "VIRTIO_NET_F_SPEED_DUPLEX",
        [64] = "VIRTIO_NET_F_RSS_CONTEXT",
        [65] = "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO",
        [66] = "VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM",
        [67] = "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO",
        [68] = "VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM",
        [69] = "VIRTIO_NET_F_OUT_NET_HEADER",
        [70] = "VIRTIO_NET_F_IPSEC",
    };

    /// <summary>The spec name of a network-device bit, or null.</summary>
    public static string? TryGetName(int bit) => Names.GetValueOrDefault(bit);

    /// <summary>Names every set bit, device-independent and network bits alike.</summary>
    public static IReadOnlyList<string> Describe(ulong features) => VirtioFeatureNames.Describe(features, TryGetName);

    /// <summary>Names every set bit of all 128, device-independent and network bits alike.</summary>
    public static IReadOnlyList<string> Describe(VirtioFeatureSet features) => VirtioFeatureNames.Describe(features, TryGetName);
}
