namespace VirtioNet.VhostUser;

/// <summary>Virtio feature bits that vhost-user gives a meaning of its own. Ref: vhost-user.rst, "Communication", "Migration".</summary>
public static class VhostUserFeatures
{
    /// <summary>
    /// VHOST_USER_F_PROTOCOL_FEATURES (30): the backend speaks GET/SET_PROTOCOL_FEATURES. It reuses the legacy UNUSED bit,
    /// so it is never shown to the virtio driver; the transport adds it to SET_FEATURES itself.
    /// </summary>
    public const ulong ProtocolFeatures = 1UL << 30;

    /// <summary>VHOST_F_LOG_ALL (26): dirty logging for live migration; a driver-only frontend never asks for it.</summary>
    public const ulong LogAll = 1UL << 26;
}
