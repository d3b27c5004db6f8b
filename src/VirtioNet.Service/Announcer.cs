using System.Net;

namespace VirtioNet.Service;

/// <summary>
/// GUEST_ANNOUNCE for the kernel's addresses: the interface's IPv4 and IPv6 addresses (from DHCP and from the kernel's
/// address notifications), and a request flag the device's announcement sets. Queue pair 0's kernel-to-device pump,
/// which owns transmitq1, sends the gratuitous ARPs and unsolicited neighbour advertisements when it sees the flag; the
/// driver itself is given no addresses, so it only acknowledges the device's request and never sends on a transmit
/// queue the pump is using.
/// </summary>
internal sealed class Announcer
{
    private IPAddress[] _addresses = [];
    private int _pending;

    /// <summary>The addresses to announce.</summary>
    public IReadOnlyList<IPAddress> Addresses => Volatile.Read(ref _addresses);

    /// <summary>Announcements sent (each a round of frames for every address).</summary>
    public long Sent { get; private set; }

    public void Add(IPAddress address)
    {
        IPAddress[] current, next;
        do
        {
            current = Volatile.Read(ref _addresses);
            if (current.Contains(address))
            {
                return;
            }

            next = [.. current, address];
        }
        while (Interlocked.CompareExchange(ref _addresses, next, current) != current);
    }

    public void Remove(IPAddress address)
    {
        IPAddress[] current, next;
        do
        {
            current = Volatile.Read(ref _addresses);
            next = [.. current.Where(a => !a.Equals(address))];
        }
        while (Interlocked.CompareExchange(ref _addresses, next, current) != current);
    }

    /// <summary>The device asked for an announcement.</summary>
    public void Request() => Volatile.Write(ref _pending, 1);

    /// <summary>Takes the request, if any (pair 0's pump).</summary>
    public bool TakeRequest()
    {
        if (Volatile.Read(ref _pending) == 0 || Interlocked.Exchange(ref _pending, 0) == 0)
        {
            return false;
        }

        Sent++;
        return true;
    }
}
