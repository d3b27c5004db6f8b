using System.Text;

namespace VirtioNet.Service;

/// <summary>
/// A multi-queue TAP interface (<c>IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE</c>) with one file descriptor per
/// queue: queue i is served by the device's queue pair i. Every frame read or written carries a virtio_net_hdr of
/// <see cref="HeaderLength"/> bytes in front (TUNSETVNETHDRSZ), the same header the device uses, so checksum and
/// segmentation requests cross between the kernel and the device without a software step.
/// </summary>
/// <remarks>
/// A TAP is removed by the kernel when its last queue's descriptor closes, unless it is persistent
/// (<see cref="SetPersistent"/>): then it outlives the process with its addresses, routes and sockets, and a later
/// <see cref="Create"/> with <c>adopt</c> attaches new queues to it (<see cref="PersistentTap"/> decides when that is
/// allowed). The queues, offloads and carrier below are the same either way.
/// </remarks>
internal sealed class TapInterface : IDisposable
{
    private readonly TapQueue[] _queues;

    private TapInterface(string name, string? netns, int headerLength, TapQueue[] queues, uint index)
    {
        Name = name;
        Namespace = netns;
        HeaderLength = headerLength;
        _queues = queues;
        Index = index;
    }

    /// <summary>The interface name.</summary>
    public string Name { get; }

    /// <summary>The network namespace it lives in; null for the caller's.</summary>
    public string? Namespace { get; }

    /// <summary>The interface index inside its namespace.</summary>
    public uint Index { get; }

    /// <summary>The virtio_net_hdr length in front of every frame (TUNSETVNETHDRSZ).</summary>
    public int HeaderLength { get; }

    /// <summary>The queues, one per queue pair.</summary>
    public IReadOnlyList<TapQueue> Queues => _queues;

    /// <summary>Checks an interface name the way the kernel will (at most 15 bytes, no '/', ':' or white space), so a bad one fails before anything starts.</summary>
    public static void CheckName(string name)
    {
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes == 0 || bytes >= Interop.Tun.IFNAMSIZ)
        {
            throw new ServiceException($"interface name '{name}' must be 1 to {Interop.Tun.IFNAMSIZ - 1} bytes long (IFNAMSIZ)");
        }

        if (name is "." or ".." || name.Any(c => c is '/' or ':' || char.IsWhiteSpace(c)))
        {
            throw new ServiceException($"interface name '{name}' is not valid (no '/', ':' or white space)");
        }
    }

    /// <summary>
    /// Creates the TAP named <paramref name="name"/> with <paramref name="queues"/> queues in <paramref name="netns"/>.
    /// An existing interface of that name is refused (IFF_TUN_EXCL), never taken over, unless <paramref name="adopt"/>
    /// says the caller has checked it is a persistent TAP nobody serves: then the queues are attached to it.
    /// </summary>
    public static TapInterface Create(string name, string? netns, int queues, int headerLength, bool adopt = false)
    {
        CheckName(name);
        if (!File.Exists("/dev/net/tun"))
        {
            throw new ServiceException("/dev/net/tun does not exist: the kernel's TUN/TAP driver is missing (modprobe tun)");
        }

        return NamespaceThread.Run(netns, () =>
        {
            var opened = new List<TapQueue>(queues);
            try
            {
                for (int i = 0; i < queues; i++)
                {
                    opened.Add(TapQueue.Open(name, i, exclusive: i == 0 && !adopt, headerLength));
                }

                uint index = Interop.Tun.NameToIndex(name);
                if (index == 0)
                {
                    throw Interop.Failure($"finding the index of {name}", Interop.LastErrno);
                }

                return new TapInterface(name, netns, headerLength, [.. opened], index);
            }
            catch
            {
                foreach (TapQueue queue in opened)
                {
                    queue.Dispose();
                }

                throw;
            }
        });
    }

    /// <summary>
    /// TUNSETOFFLOAD: what the kernel may hand over (<c>TUN_F_*</c>): a partial checksum, TSO and USO segments. The
    /// kernel segments anything else itself before it reaches the TAP.
    /// </summary>
    public void SetOffloads(uint flags) => _queues[0].Ioctl(Interop.Tun.TUNSETOFFLOAD, flags, "TUNSETOFFLOAD");

    /// <summary>
    /// TUNSETPERSIST: with true the interface outlives its queues (the process dies, the kernel keeps the interface, its
    /// addresses and routes); with false closing the last queue removes it again.
    /// </summary>
    public void SetPersistent(bool persistent) => _queues[0].Ioctl(Interop.Tun.TUNSETPERSIST, persistent ? 1u : 0u, "TUNSETPERSIST");

    /// <summary>TUNSETCARRIER: the interface shows NO-CARRIER while the device's link is down.</summary>
    public unsafe void SetCarrier(bool up)
    {
        // SAFETY: TUNSETCARRIER reads one int from the pointer.
        int carrier = up ? 1 : 0;
        _queues[0].IoctlPointer(Interop.Tun.TUNSETCARRIER, &carrier, "TUNSETCARRIER");
    }

    /// <summary>Closes every queue; the kernel removes the interface with the last one.</summary>
    public void Dispose()
    {
        foreach (TapQueue queue in _queues)
        {
            queue.Dispose();
        }
    }
}
