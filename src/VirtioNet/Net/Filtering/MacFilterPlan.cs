using System.Net.NetworkInformation;

namespace VirtioNet.Net.Filtering;

/// <summary>
/// What to send for a MAC filter request (VIRTIO_NET_CTRL_MAC_TABLE_SET) and which receive modes must cover what does
/// not fit: a unicast list over the capacity is replaced by all-unicast (or promiscuous when VIRTIO_NET_F_CTRL_RX_EXTRA
/// is missing), a multicast list over what is left by all-multicast, as FreeBSD's vtnet and Linux's drivers for
/// fixed-size filters do. Duplicates are removed first. Ref: virtio v1.2 §5.1.6.5.2.
/// </summary>
public sealed record MacFilterPlan
{
    private MacFilterPlan(IReadOnlyList<PhysicalAddress> unicast, IReadOnlyList<PhysicalAddress> multicast, bool unicastOverflow, bool multicastOverflow, ReceiveFilterFlags fallback)
    {
        Unicast = unicast;
        Multicast = multicast;
        UnicastOverflow = unicastOverflow;
        MulticastOverflow = multicastOverflow;
        FallbackFlags = fallback;
    }

    /// <summary>The unicast entries to put in the table (empty when they overflowed).</summary>
    public IReadOnlyList<PhysicalAddress> Unicast { get; }

    /// <summary>The multicast entries to put in the table (empty when they overflowed).</summary>
    public IReadOnlyList<PhysicalAddress> Multicast { get; }

    /// <summary>True when the unicast list did not fit.</summary>
    public bool UnicastOverflow { get; }

    /// <summary>True when the multicast list did not fit in what the unicast entries left.</summary>
    public bool MulticastOverflow { get; }

    /// <summary>The receive modes to turn on in addition to the caller's, to accept what the table cannot hold.</summary>
    public ReceiveFilterFlags FallbackFlags { get; }

    /// <summary>Decides the table and the fallback.</summary>
    /// <param name="unicast">Extra unicast addresses to accept (the device's own MAC is always accepted).</param>
    /// <param name="multicast">Multicast addresses to accept.</param>
    /// <param name="capacity">Entries the table holds, both lists together.</param>
    /// <param name="allUnicastAvailable">VIRTIO_NET_F_CTRL_RX_EXTRA is negotiated, so all-unicast can stand in for promiscuous.</param>
    /// <exception cref="ArgumentException">An address is not 6 bytes, a unicast entry has the group bit set, or a multicast entry lacks it.</exception>
    public static MacFilterPlan Create(IEnumerable<PhysicalAddress> unicast, IEnumerable<PhysicalAddress> multicast, int capacity, bool allUnicastAvailable)
    {
        ArgumentNullException.ThrowIfNull(unicast);
        ArgumentNullException.ThrowIfNull(multicast);
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        List<PhysicalAddress> uni = Distinct(unicast, group: false, nameof(unicast));
        List<PhysicalAddress> multi = Distinct(multicast, group: true, nameof(multicast));

        ReceiveFilterFlags fallback = ReceiveFilterFlags.None;
        bool uniOverflow = uni.Count > capacity;
        if (uniOverflow)
        {
            uni.Clear();
            fallback |= allUnicastAvailable ? ReceiveFilterFlags.AllUnicast : ReceiveFilterFlags.Promiscuous;
        }

        bool multiOverflow = multi.Count > capacity - uni.Count;
        if (multiOverflow)
        {
            multi.Clear();
            fallback |= ReceiveFilterFlags.AllMulticast;
        }

        return new MacFilterPlan(uni, multi, uniOverflow, multiOverflow, fallback);
    }

    /// <summary>True when the group (multicast) bit, the least significant bit of the first octet, is set.</summary>
    public static bool IsMulticast(ReadOnlySpan<byte> address) => address.Length > 0 && (address[0] & 0x01) != 0;

    private static List<PhysicalAddress> Distinct(IEnumerable<PhysicalAddress> addresses, bool group, string parameter)
    {
        var list = new List<PhysicalAddress>();
        foreach (PhysicalAddress address in addresses)
        {
            ArgumentNullException.ThrowIfNull(address, parameter);
            byte[] bytes = address.GetAddressBytes();
            if (bytes.Length != EthernetFrame.AddressLength)
            {
                throw new ArgumentException($"A MAC address is {EthernetFrame.AddressLength} bytes; {address} has {bytes.Length}.", parameter);
            }

            if (IsMulticast(bytes) != group)
            {
                throw new ArgumentException(group
                    ? $"{address} is a unicast address; the multicast list takes only addresses with the group bit set."
                    : $"{address} is a multicast address; the unicast list takes only addresses with the group bit clear.", parameter);
            }

            if (!list.Contains(address))
            {
                list.Add(address);
            }
        }

        return list;
    }
}
