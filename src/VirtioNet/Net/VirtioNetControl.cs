using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using VirtioNet.Core;
using VirtioNet.Net.Control;
using VirtioNet.Net.Filtering;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>
/// The device's control plane (<see cref="VirtioNetDevice.Control"/>): receive modes, the MAC filter table, the MAC
/// address, the VLAN filter, guest offloads, announcements, queue pairs, RSS and hash reporting, notification
/// coalescing and the device's statistics. It keeps one record of what the device was told, next to the code that
/// tells it, and <see cref="Replay"/> tells a reset device all of it again; nothing reaches the control queue any other
/// way. Ref: virtio v1.2 §5.1.6.5.
/// </summary>
/// <remarks>
/// The methods may be called from any thread: they are serialized among themselves, and the control queue is separate
/// from the data queues the workers own. Each waits for the device's ack, at most
/// <see cref="VirtioNetOptions.ControlCommandTimeout"/> per command.
/// </remarks>
public sealed partial class VirtioNetControl
{
    // The device this is the control plane of: its transport, negotiated features, configuration and pairs.
    private readonly VirtioNetDevice _device;

    // The control queue, when VIRTIO_NET_F_CTRL_VQ was negotiated.
    private readonly VirtioNetControlQueue? _control;

    internal VirtioNetControl(VirtioNetDevice device, VirtioNetControlQueue? control)
    {
        _device = device;
        _control = control;
        GuestOffloads = NegotiatedGuestOffloads;
    }

    // Serializes the control methods and recovery, so the record below always matches what the device was told.
    internal Lock StateLock => _lock;

    private ulong NegotiatedFeatures => _device.NegotiatedFeatures.Low;

    private VirtioFeatureSet NegotiatedFeatureSet => _device.NegotiatedFeatures;

    private VirtioNetConfig Config => _device.Config;

    private int QueuePairs => _device.Pairs.Count;

    // The guest offload bits VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET may carry (§5.1.6.5.6.2: only negotiated ones).
    private const ulong GuestOffloadFeatures =
        VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestEcn |
        VirtioNetFeatures.GuestUfo | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6 |
        VirtioNetFeatures.GuestUdpTunnelGsoOffload | VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload;

    // The negotiated guest offloads as the le64 bitmap of VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET numbers them: the feature
    // bits below 64, and GUEST_UDP_TUNNEL_GSO (65) and its _CSUM (66) at 46 and 47 (virtio v1.4 §5.1.6.5.6.1).
    private ulong NegotiatedGuestOffloads =>
        (NegotiatedFeatures & GuestOffloadFeatures) |
        (NegotiatedFeatureSet.ContainsAny(VirtioNetFeatures.GuestUdpTunnelGso) ? VirtioNetFeatures.GuestUdpTunnelGsoOffload : 0) |
        (NegotiatedFeatureSet.ContainsAny(VirtioNetFeatures.GuestUdpTunnelGsoCsum) ? VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload : 0);

    // The modes that need VIRTIO_NET_F_CTRL_RX_EXTRA rather than CTRL_RX alone.
    private const ReceiveFilterFlags ExtraReceiveFilters =
        ReceiveFilterFlags.AllUnicast | ReceiveFilterFlags.NoMulticast | ReceiveFilterFlags.NoUnicast | ReceiveFilterFlags.NoBroadcast;

    // Serializes the control methods, so the record of what the device was told always matches it.
    private readonly Lock _lock = new();

    // What the device was told (each field next to the method that tells it; Replay sends all of it again):


    // The receive modes the caller asked for.
    private ReceiveFilterFlags _requestedFilter;

    // The modes the MAC table's overflow added (MacFilterPlan.FallbackFlags).
    private ReceiveFilterFlags _overflowFilter;

    // Which modes' device state is known (sent at least once): the device's reset state is its own (QEMU starts promiscuous).
    private ReceiveFilterFlags _knownFilter;

    // The device's state of the known modes.
    private ReceiveFilterFlags _deviceFilter;

    // VLAN ids added to the device's filter.
    private readonly SortedSet<int> _vlanIds = [];

    // IPv4 addresses announced by gratuitous ARP when the device asks.
    private IPAddress[] _announceAddresses = [];

    // The encapsulation types inner header hash was last set to (the device starts with none, §5.1.6.4).
    private HashTunnelTypes _hashTunnelTypes;

    /// <summary>The control queue, or null when VIRTIO_NET_F_CTRL_VQ was not negotiated (tests and recovery).</summary>
    internal VirtioNetControlQueue? Queue => _control;

    /// <summary>True when the device has a control queue (VIRTIO_NET_F_CTRL_VQ was negotiated).</summary>
    public bool IsAvailable => _control is not null;

    /// <summary>The control queue's index on the device (2N), or -1 without one.</summary>
    public int QueueIndex => _control?.QueueIndex ?? -1;

    /// <summary>Commands the device acknowledged with VIRTIO_NET_OK.</summary>
    public long CommandsCompleted => _control?.CommandsCompleted ?? 0;

    /// <summary>Commands the device answered with VIRTIO_NET_ERR.</summary>
    public long CommandsRejected => _control?.CommandsRejected ?? 0;

    /// <summary>The receive modes in effect as the driver set them: the caller's, plus any the MAC table's overflow needed.</summary>
    public ReceiveFilterFlags ReceiveFilter
    {
        get
        {
            lock (_lock)
            {
                return _requestedFilter | _overflowFilter;
            }
        }
    }

    /// <summary>The last MAC table sent (with its overflow decisions), or null before the first <see cref="SetMacFilter"/>.</summary>
    public MacFilterPlan? MacFilter { get; private set; }

    /// <summary>The VLAN ids in the device's filter, in order.</summary>
    public IReadOnlyList<int> VlanIds
    {
        get
        {
            lock (_lock)
            {
                return [.. _vlanIds];
            }
        }
    }

    /// <summary>The guest offloads in effect: those negotiated, as changed by <see cref="SetGuestOffloads"/>.</summary>
    public ulong GuestOffloads { get; private set; }

    /// <summary>Announcements carried out (gratuitous ARPs and neighbour advertisements sent, and VIRTIO_NET_CTRL_ANNOUNCE_ACK acknowledged).</summary>
    public long Announcements { get; private set; }

    /// <summary>
    /// Sets the receive modes (VIRTIO_NET_CTRL_RX); modes the MAC table's overflow needs stay on. Only modes whose device
    /// state differs (or is not known yet) are sent.
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.RequiredFeatureMissing"/> without VIRTIO_NET_F_CTRL_RX (or CTRL_RX_EXTRA for the
    /// extra modes); or the control queue's failures (rejected, timeout).
    /// </exception>
    public void SetReceiveMode(ReceiveFilterFlags flags)
    {
        lock (_lock)
        {
            ApplyReceiveFilter(flags | _overflowFilter);
            _requestedFilter = flags;
        }
    }

    /// <summary>Turns promiscuous mode on or off (VIRTIO_NET_CTRL_RX_PROMISC), keeping the other modes.</summary>
    /// <inheritdoc cref="SetReceiveMode" path="/exception"/>
    public void SetPromiscuous(bool on) => ChangeReceiveMode(ReceiveFilterFlags.Promiscuous, on);

    /// <summary>Turns all-multicast mode on or off (VIRTIO_NET_CTRL_RX_ALLMULTI), keeping the other modes.</summary>
    /// <inheritdoc cref="SetReceiveMode" path="/exception"/>
    public void SetAllMulticast(bool on) => ChangeReceiveMode(ReceiveFilterFlags.AllMulticast, on);

    /// <summary>
    /// Replaces the device's MAC filter table (VIRTIO_NET_CTRL_MAC_TABLE_SET) with extra unicast and multicast addresses
    /// to accept besides the device's own. A list that does not fit <see cref="VirtioNetOptions.MacFilterCapacity"/>
    /// is replaced by all-unicast (or promiscuous) or all-multicast; the plan returned says which.
    /// </summary>
    /// <exception cref="ArgumentException">An address is malformed or in the wrong list.</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_CTRL_RX, or the control queue's failures.</exception>
    public MacFilterPlan SetMacFilter(IEnumerable<PhysicalAddress> unicast, IEnumerable<PhysicalAddress> multicast)
    {
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.CtrlRx, "VIRTIO_NET_F_CTRL_RX", "the MAC filter table");
            bool extra = (NegotiatedFeatures & VirtioNetFeatures.CtrlRxExtra) != 0;
            MacFilterPlan plan = MacFilterPlan.Create(unicast, multicast, _device.Options.MacFilterCapacity, extra);
            control.Execute(VirtioNetControlClass.Mac, VirtioNetControlCommands.MacTableSet, MacTable(plan.Unicast), MacTable(plan.Multicast));
            MacFilter = plan;
            ApplyReceiveFilter(_requestedFilter | plan.FallbackFlags);
            _overflowFilter = plan.FallbackFlags;
            return plan;
        }
    }

    /// <summary>
    /// Changes the device's MAC address: VIRTIO_NET_CTRL_MAC_ADDR_SET with VIRTIO_NET_F_CTRL_MAC_ADDR, or (legacy devices
    /// without it) a write of the configuration space's mac field (§5.1.6.5.2, legacy interface). Frames built from
    /// <see cref="VirtioNetDevice.MacAddress"/> carry the new address from then on.
    /// </summary>
    /// <exception cref="ArgumentException">The address is not 6 bytes, is multicast, or is all zeros.</exception>
    /// <exception cref="VirtioException">Neither way is available, or the control queue's failures.</exception>
    public void SetMacAddress(PhysicalAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        byte[] mac = address.GetAddressBytes();
        if (mac.Length != EthernetFrame.AddressLength || MacFilterPlan.IsMulticast(mac) || Array.TrueForAll(mac, b => b == 0))
        {
            throw new ArgumentException($"A device MAC address must be 6 bytes, unicast and not all zeros; {address} is not.", nameof(address));
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_device.IsDisposed, _device);
            if ((NegotiatedFeatures & VirtioNetFeatures.CtrlMacAddr) != 0 && _control is not null)
            {
                _control.Execute(VirtioNetControlClass.Mac, VirtioNetControlCommands.MacAddrSet, mac);
            }
            else if (_device.Transport.IsLegacy && (NegotiatedFeatures & VirtioNetFeatures.Mac) != 0)
            {
                for (int i = 0; i < mac.Length; i++)
                {
                    _device.Transport.WriteConfig8(VirtioNetConfig.MacOffset + i, mac[i]);
                }
            }
            else
            {
                throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, $"{_device.Transport.Description}: setting the MAC address needs VIRTIO_NET_F_CTRL_MAC_ADDR (or a legacy device with VIRTIO_NET_F_MAC); neither was negotiated.");
            }

            _device.MacAddress = mac;
            _device.MacFromDevice = false;
        }
    }

    /// <summary>Adds a VLAN id to the device's filter (VIRTIO_NET_CTRL_VLAN_ADD): tagged frames of that VLAN pass.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is above 4095 (or negative).</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_CTRL_VLAN, or the control queue's failures.</exception>
    public void AddVlan(int id) => ChangeVlan(id, add: true);

    /// <summary>Removes a VLAN id from the device's filter (VIRTIO_NET_CTRL_VLAN_DEL).</summary>
    /// <inheritdoc cref="AddVlan" path="/exception"/>
    public void RemoveVlan(int id) => ChangeVlan(id, add: false);

    /// <summary>
    /// Changes which guest (receive) offloads the device applies (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET), within those
    /// negotiated. Ref: virtio v1.2 §5.1.6.5.6.
    /// </summary>
    /// <param name="offloads">
    /// A subset of the negotiated VIRTIO_NET_F_GUEST_* bits (<see cref="VirtioNetFeatures"/>); the UDP tunnel ones as
    /// <see cref="VirtioNetFeatures.GuestUdpTunnelGsoOffload"/> and <see cref="VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload"/>.
    /// </param>
    /// <exception cref="ArgumentException">A bit is not a guest offload, or was not negotiated.</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, or the control queue's failures.</exception>
    public void SetGuestOffloads(ulong offloads)
    {
        if ((offloads & ~GuestOffloadFeatures) != 0)
        {
            throw new ArgumentException($"0x{offloads & ~GuestOffloadFeatures:x} are not guest offload bits ({string.Join(", ", VirtioNetFeatureNames.Describe(offloads & ~GuestOffloadFeatures))}).", nameof(offloads));
        }

        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.CtrlGuestOffloads, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS", "changing guest offloads");
            if ((offloads & ~NegotiatedGuestOffloads) != 0)
            {
                throw new ArgumentException($"Only negotiated guest offloads can be turned on; {string.Join(", ", VirtioNetFeatureNames.Describe(offloads & ~NegotiatedGuestOffloads))} were not negotiated.", nameof(offloads));
            }

            Span<byte> payload = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(payload, offloads);
            control.Execute(VirtioNetControlClass.GuestOffloads, VirtioNetControlCommands.GuestOffloadsSet, payload);
            GuestOffloads = offloads;
        }
    }

    /// <summary>
    /// The addresses to announce when the device asks (VIRTIO_NET_S_ANNOUNCE): a gratuitous ARP for each IPv4 address, an
    /// unsolicited neighbour advertisement for each IPv6 one, as Linux's stack does on NETDEV_NOTIFY_PEERS. The stack above
    /// the driver tells it which addresses it holds. Replaces the previous list.
    /// </summary>
    /// <exception cref="ArgumentException">An address is neither IPv4 nor IPv6.</exception>
    public void SetAnnounceAddresses(IEnumerable<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        IPAddress[] list = [.. addresses];
        foreach (IPAddress address in list)
        {
            ArgumentNullException.ThrowIfNull(address, nameof(addresses));
            if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            {
                throw new ArgumentException($"Only IPv4 and IPv6 addresses can be announced; {address} is {address.AddressFamily}.", nameof(addresses));
            }
        }

        Volatile.Write(ref _announceAddresses, list);
    }

    /// <summary>The addresses announced when the device asks.</summary>
    public IReadOnlyList<IPAddress> AnnounceAddresses => Volatile.Read(ref _announceAddresses);

    /// <summary>
    /// Tells the device the announcement it asked for is done (VIRTIO_NET_CTRL_ANNOUNCE_ACK), which clears
    /// VIRTIO_NET_S_ANNOUNCE. <see cref="VirtioNetDevice.CheckLink"/> does this itself after sending the gratuitous ARPs.
    /// </summary>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_GUEST_ANNOUNCE, or the control queue's failures (QEMU rejects an ack nothing asked for).</exception>
    public void AcknowledgeAnnounce()
    {
        lock (_lock)
        {
            RequireControl(VirtioNetFeatures.GuestAnnounce, "VIRTIO_NET_F_GUEST_ANNOUNCE", "acknowledging an announcement")
                .Execute(VirtioNetControlClass.Announce, VirtioNetControlCommands.AnnounceAck, []);
        }
    }

    /// <summary>
    /// Reads back the notification coalescing of one virtqueue (VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET), by its index
    /// (0:rx0 1:tx0 ...): what the device applies now, whichever command set it. Ref: virtio v1.3 §5.1.6.5.9.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not the index of a receive or transmit queue set up.</exception>
    /// <exception cref="VirtioException">
    /// Without VIRTIO_NET_F_VQ_NOTF_COAL; the control queue's failures (VIRTIO_NET_ERR for a queue that is not enabled);
    /// <see cref="VirtioErrorReason.DeviceMisbehaved"/> when the reply is not the 8 bytes of <c>struct virtio_net_ctrl_coal</c>.
    /// </exception>
    public NotificationCoalescing GetQueueCoalescing(int queueIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queueIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(queueIndex, 2 * QueuePairs);
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.VqNotfCoal, "VIRTIO_NET_F_VQ_NOTF_COAL", "reading per-queue notification coalescing");

            // struct virtio_net_ctrl_coal_vq: vq_index and reserved are the driver's, the coal part is the device's reply.
            Span<byte> payload = stackalloc byte[MultiQueuePayloads.VqCoalescingLength - NotificationCoalescing.Length];
            BinaryPrimitives.WriteUInt16LittleEndian(payload, (ushort)queueIndex);
            BinaryPrimitives.WriteUInt16LittleEndian(payload[2..], 0);
            Span<byte> reply = stackalloc byte[NotificationCoalescing.Length];
            int written = control.ExecuteWithReply(VirtioNetControlClass.NotfCoal, VirtioNetControlCommands.NotfCoalVqGet, payload, reply);
            if (written != NotificationCoalescing.Length)
            {
                throw new VirtioException(VirtioErrorReason.DeviceMisbehaved, $"{_device.Transport.Description}: the device answered VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET for queue {queueIndex} with {written} bytes; struct virtio_net_ctrl_coal has {NotificationCoalescing.Length}.");
            }

            return NotificationCoalescing.Read(reply);
        }
    }

    /// <summary>
    /// The encapsulation types the device can hash over inner headers (supported_tunnel_types, the documented bits only);
    /// <see cref="HashTunnelTypes.None"/> without VIRTIO_NET_F_HASH_TUNNEL.
    /// </summary>
    public HashTunnelTypes SupportedHashTunnelTypes => (HashTunnelTypes)Config.SupportedTunnelTypes & HashTunnelTypes.All;

    /// <summary>The encapsulation types inner header hash is enabled for, as last set (none after start-up).</summary>
    public HashTunnelTypes EnabledHashTunnelTypes
    {
        get
        {
            lock (_lock)
            {
                return _hashTunnelTypes;
            }
        }
    }

    /// <summary>
    /// Enables inner header hash for the given encapsulation types (VIRTIO_NET_CTRL_HASH_TUNNEL_SET), or turns it off
    /// with <see cref="HashTunnelTypes.None"/>: the RSS and reported hash of a packet of an enabled type cover its inner
    /// headers. Ref: virtio v1.3 §5.1.6.4 (Inner Header Hash).
    /// </summary>
    /// <exception cref="ArgumentException">A type the device does not list in supported_tunnel_types (§5.1.6.4: the driver must not set one).</exception>
    /// <exception cref="VirtioException">Without VIRTIO_NET_F_HASH_TUNNEL, or the control queue's failures.</exception>
    public void SetHashTunnelTypes(HashTunnelTypes types)
    {
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.HashTunnel, "VIRTIO_NET_F_HASH_TUNNEL", "inner header hash");
            HashTunnelTypes unsupported = types & ~SupportedHashTunnelTypes;
            if (unsupported != HashTunnelTypes.None)
            {
                throw new ArgumentException($"The device does not support inner header hash for {unsupported} (supported_tunnel_types lists {SupportedHashTunnelTypes}).", nameof(types));
            }

            Span<byte> payload = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)types);
            control.Execute(VirtioNetControlClass.HashTunnel, VirtioNetControlCommands.HashTunnelSet, payload);
            _hashTunnelTypes = types;
        }
    }

    // Bring-up, after DRIVER_OK: a MAC the driver made up must reach the device's filter, or unicast frames to it would
    // be dropped once the device leaves promiscuous mode (Linux's virtnet_probe does the same).
    // With more than one pair set up, the pairs too (VirtioNetControl.MultiQueue.cs).
    internal void Start()
    {
        if (!_device.MacFromDevice && _control is not null && (NegotiatedFeatures & VirtioNetFeatures.CtrlMacAddr) != 0)
        {
            _control.Execute(VirtioNetControlClass.Mac, VirtioNetControlCommands.MacAddrSet, _device.MacAddress.Span);
        }

        StartQueuePairs();
    }

    // Called by the device on a new VIRTIO_NET_S_ANNOUNCE: a gratuitous ARP per IPv4 address and an unsolicited neighbour
    // advertisement per IPv6 one on transmitq1, then the acknowledgement (§5.1.6.5.4). False when nothing was done.
    internal bool Announce()
    {
        if ((NegotiatedFeatures & VirtioNetFeatures.GuestAnnounce) == 0 || _control is not { IsUsable: true })
        {
            return false;
        }

        Span<byte> frame = stackalloc byte[Math.Max(GratuitousArp.FrameLength, UnsolicitedNeighbourAdvertisement.FrameLength)];
        ReadOnlySpan<byte> mac = _device.MacAddress.Span;
        foreach (IPAddress address in Volatile.Read(ref _announceAddresses))
        {
            int length = address.AddressFamily == AddressFamily.InterNetworkV6
                ? UnsolicitedNeighbourAdvertisement.Write(mac, address, frame)
                : GratuitousArp.Write(mac, address, frame);
            for (int attempt = 0; attempt < 100 && !_device.Pairs[0].TransmitQueue.TrySend(frame[..length]); attempt++)
            {
                Thread.Yield();
            }
        }

        AcknowledgeAnnounce();
        Announcements++;
        return true;
    }

    private void ChangeReceiveMode(ReceiveFilterFlags flag, bool on)
    {
        lock (_lock)
        {
            ReceiveFilterFlags requested = on ? _requestedFilter | flag : _requestedFilter & ~flag;
            ApplyReceiveFilter(requested | _overflowFilter);
            _requestedFilter = requested;
        }
    }

    // Sends VIRTIO_NET_CTRL_RX commands for every mode whose device state differs from target (or is unknown).
    private void ApplyReceiveFilter(ReceiveFilterFlags target)
    {
        VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.CtrlRx, "VIRTIO_NET_F_CTRL_RX", "changing receive modes");
        bool extra = (NegotiatedFeatures & VirtioNetFeatures.CtrlRxExtra) != 0;
        if (!extra && (target & ExtraReceiveFilters) != 0)
        {
            throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, $"{_device.Transport.Description}: the receive modes {target & ExtraReceiveFilters} need VIRTIO_NET_F_CTRL_RX_EXTRA, which was not negotiated.");
        }

        Span<byte> payload = stackalloc byte[1];
        for (byte command = VirtioNetControlCommands.RxPromisc; command <= VirtioNetControlCommands.RxNoBcast; command++)
        {
            var flag = (ReceiveFilterFlags)(1 << command);
            if (!extra && (flag & ExtraReceiveFilters) != 0)
            {
                continue;
            }

            bool on = (target & flag) != 0;
            if ((_knownFilter & flag) != 0 && ((_deviceFilter & flag) != 0) == on)
            {
                continue;
            }

            payload[0] = on ? (byte)1 : (byte)0;
            control.Execute(VirtioNetControlClass.Rx, command, payload);
            _knownFilter |= flag;
            _deviceFilter = on ? _deviceFilter | flag : _deviceFilter & ~flag;
        }
    }

    private void ChangeVlan(int id, bool add)
    {
        VlanTag.ValidateId(id);
        lock (_lock)
        {
            VirtioNetControlQueue control = RequireControl(VirtioNetFeatures.CtrlVlan, "VIRTIO_NET_F_CTRL_VLAN", "the VLAN filter");
            Span<byte> payload = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(payload, (ushort)id);
            control.Execute(VirtioNetControlClass.Vlan, add ? VirtioNetControlCommands.VlanAdd : VirtioNetControlCommands.VlanDel, payload);
            if (add)
            {
                _vlanIds.Add(id);
            }
            else
            {
                _vlanIds.Remove(id);
            }
        }
    }

    private VirtioNetControlQueue RequireControl(ulong feature, string featureName, string what)
    {
        ObjectDisposedException.ThrowIf(_device.IsDisposed, _device);
        _device.ThrowIfSuspended();
        if ((NegotiatedFeatures & feature) == 0 || _control is null)
        {
            throw new VirtioException(VirtioErrorReason.RequiredFeatureMissing, $"{_device.Transport.Description}: {what} needs {featureName} and VIRTIO_NET_F_CTRL_VQ, which were not both negotiated.");
        }

        return _control;
    }

    // struct virtio_net_ctrl_mac: le32 entries, then the addresses (§5.1.6.5.2).
    private static byte[] MacTable(IReadOnlyList<PhysicalAddress> addresses)
    {
        byte[] table = new byte[4 + (EthernetFrame.AddressLength * addresses.Count)];
        BinaryPrimitives.WriteUInt32LittleEndian(table, (uint)addresses.Count);
        for (int i = 0; i < addresses.Count; i++)
        {
            addresses[i].GetAddressBytes().CopyTo(table, 4 + (EthernetFrame.AddressLength * i));
        }

        return table;
    }

    // A reset device forgets everything the driver told it after DRIVER_OK (§5.1.6.5): tell it again, in the order a
    // driver coming up would, from the record the control methods keep. Called by recovery with StateLock held.
    internal void Replay()
    {
        RestoreMacAddress();
        if (_control is null)
        {
            return;
        }

        // Receive modes: only those the device was told before (the others keep the device's reset state, as they did).
        ReceiveFilterFlags known = _knownFilter;
        if (known != ReceiveFilterFlags.None)
        {
            ReceiveFilterFlags target = _requestedFilter | _overflowFilter;
            _knownFilter = ~known;
            _deviceFilter = target;
            ApplyReceiveFilter(target);
            _knownFilter &= known;
        }

        if (MacFilter is { } plan)
        {
            _control.Execute(VirtioNetControlClass.Mac, VirtioNetControlCommands.MacTableSet, MacTable(plan.Unicast), MacTable(plan.Multicast));
        }

        Span<byte> payload = stackalloc byte[8];
        foreach (int id in _vlanIds)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(payload, (ushort)id);
            _control.Execute(VirtioNetControlClass.Vlan, VirtioNetControlCommands.VlanAdd, payload[..2]);
        }

        if (GuestOffloads != (NegotiatedFeatures & GuestOffloadFeatures))
        {
            BinaryPrimitives.WriteUInt64LittleEndian(payload, GuestOffloads);
            _control.Execute(VirtioNetControlClass.GuestOffloads, VirtioNetControlCommands.GuestOffloadsSet, payload);
        }

        // §5.1.6.5.5: the device starts with one pair again, and with automatic steering (§5.1.6.5.6).
        if (Rss is { } rss)
        {
            ConfigureRss(rss);
        }
        else if (_rssDisabled)
        {
            DisableRss();
        }
        else if (ActiveQueuePairs > 1 && (NegotiatedFeatures & VirtioNetFeatures.Mq) != 0)
        {
            SetActiveQueuePairs(ActiveQueuePairs);
        }

        if (_hashReportTypes != RssHashTypes.None && (NegotiatedFeatures & VirtioNetFeatures.Rss) == 0)
        {
            ConfigureHashReport(_hashReportTypes, _hashReportKey);
        }

        // Sent as such, not through SetTransmitCoalescing/SetReceiveCoalescing, which would forget the per-queue settings.
        if (TransmitCoalescing is { } transmit)
        {
            SendCoalescing(VirtioNetControlCommands.NotfCoalTxSet, transmit);
        }

        if (ReceiveCoalescing is { } receive)
        {
            SendCoalescing(VirtioNetControlCommands.NotfCoalRxSet, receive);
        }

        // After the direction-wide settings, which would replace them (§5.1.6.5.9), and after the pairs are active again:
        // VQ_SET names an enabled queue.
        RestoreQueueCoalescing(onlyQueue: -1);
    }

    // The MAC address, when the driver chose it (made up at bring-up or set with SetMacAddress): the device's reset
    // brings back its own.
    private void RestoreMacAddress()
    {
        if (_device.MacFromDevice)
        {
            return;
        }

        ReadOnlySpan<byte> mac = _device.MacAddress.Span;
        if ((NegotiatedFeatures & VirtioNetFeatures.CtrlMacAddr) != 0 && _control is not null)
        {
            _control.Execute(VirtioNetControlClass.Mac, VirtioNetControlCommands.MacAddrSet, mac);
        }
        else if (_device.Transport.IsLegacy && (NegotiatedFeatures & VirtioNetFeatures.Mac) != 0)
        {
            for (int i = 0; i < mac.Length; i++)
            {
                _device.Transport.WriteConfig8(VirtioNetConfig.MacOffset + i, mac[i]);
            }
        }
    }
}
