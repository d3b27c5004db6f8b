namespace VirtioNet.VhostUser;

/// <summary>Which side of the unix socket listens. Ref: vhost-user.rst, "Introduction" (either side may be client or server).</summary>
public enum VhostUserSocketMode
{
    /// <summary>The backend listens and this driver connects (DPDK's vhost vdev by default, QEMU's <c>server=off</c>).</summary>
    Connect,

    /// <summary>This driver listens and the backend connects (DPDK's vhost vdev with <c>client=1</c>).</summary>
    Listen,
}
