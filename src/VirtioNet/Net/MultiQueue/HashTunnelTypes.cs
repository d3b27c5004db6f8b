namespace VirtioNet.Net.MultiQueue;

/// <summary>
/// Encapsulation types for inner header hash (VIRTIO_NET_F_HASH_TUNNEL): the bits of <c>supported_tunnel_types</c> in
/// the configuration space and of <c>enabled_tunnel_types</c> in VIRTIO_NET_CTRL_HASH_TUNNEL_SET. For an enabled type
/// the device hashes (for RSS and the reported hash) over the inner headers of a matching packet instead of the outer
/// ones. Ref: virtio v1.3 §5.1.6.4 (Inner Header Hash, Encapsulation types supported/enabled for inner header hash).
/// </summary>
[Flags]
public enum HashTunnelTypes : uint
{
    /// <summary>No type: inner header hash off (the device's reset state).</summary>
    None = 0,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_GRE_2784 (1 &lt;&lt; 0): GRE, RFC 2784.</summary>
    Gre2784 = 1u << 0,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_GRE_2890 (1 &lt;&lt; 1): GRE with key and sequence number, RFC 2890.</summary>
    Gre2890 = 1u << 1,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_GRE_7676 (1 &lt;&lt; 2): IPv6 over GRE, RFC 7676.</summary>
    Gre7676 = 1u << 2,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_GRE_UDP (1 &lt;&lt; 3): GRE-in-UDP, RFC 8086.</summary>
    GreUdp = 1u << 3,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_VXLAN (1 &lt;&lt; 4): VXLAN, RFC 7348.</summary>
    Vxlan = 1u << 4,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_VXLAN_GPE (1 &lt;&lt; 5): VXLAN generic protocol extension.</summary>
    VxlanGpe = 1u << 5,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_GENEVE (1 &lt;&lt; 6): Geneve, RFC 8926.</summary>
    Geneve = 1u << 6,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_IPIP (1 &lt;&lt; 7): IP in IP, RFC 2003.</summary>
    Ipip = 1u << 7,

    /// <summary>VIRTIO_NET_HASH_TUNNEL_TYPE_NVGRE (1 &lt;&lt; 8): NVGRE, RFC 7637.</summary>
    Nvgre = 1u << 8,

    /// <summary>Every type the spec defines; other bits of <c>supported_tunnel_types</c> are ignored (§5.1.6.4: the driver must ignore them).</summary>
    All = Gre2784 | Gre2890 | Gre7676 | GreUdp | Vxlan | VxlanGpe | Geneve | Ipip | Nvgre,
}
