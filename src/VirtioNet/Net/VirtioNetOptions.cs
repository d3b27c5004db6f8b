using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>How to bring up a virtio-net device. Every default is what a production driver would choose, and why is said beside it.</summary>
public sealed record VirtioNetOptions
{
    /// <summary>
    /// Every feature this driver implements today. Features outside this set are never accepted, whatever the device offers.
    /// </summary>
    public const ulong ImplementedFeatures =
        VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioNetFeatures.Mtu |
        VirtioNetFeatures.SpeedDuplex | VirtioFeatures.IndirectDesc | VirtioFeatures.EventIdx | VirtioFeatures.Version1 |
        VirtioFeatures.AnyLayout | VirtioFeatures.RingPacked | VirtioFeatures.AccessPlatform | VirtioFeatures.OrderPlatform | RingFeatures | ControlFeatures |
        OffloadFeatures;

    /// <summary>
    /// The optional ring and transport features: IN_ORDER (batched used returns), NOTIFICATION_DATA (notifications that
    /// say where the available ring ends), NOTIF_CONFIG_DATA (notifications carry a value the device gives per queue;
    /// only on transports that have one, virtio-pci modern) and RING_RESET (<see cref="VirtioNetDevice.ResetQueue"/>).
    /// None changes what the driver does until a device offers it. Ref: virtio v1.2 §2.7.9, §2.8.9, §2.9, §2.6.1;
    /// virtio v1.3 §6 (VIRTIO_F_NOTIF_CONFIG_DATA: a driver should accept it when offered).
    /// </summary>
    public const ulong RingFeatures = VirtioFeatures.InOrder | VirtioFeatures.NotificationData | VirtioFeatures.NotifConfigData | VirtioFeatures.RingReset;

    /// <summary>
    /// The checksum and segmentation offloads, both directions: CSUM, HOST_TSO4/6, HOST_ECN, HOST_USO on transmit
    /// (software fallbacks when absent), GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_USO4/6 on receive, and GUEST_HDRLEN
    /// (the driver always writes the exact hdr_len), and RSC_EXT (the device's coalescing information beside large
    /// receives, <see cref="Offloads.ReceivedFrameInfo.CoalescedSegments"/>; only with <see cref="ReceiveCoalescingInfo"/>).
    /// UFO is left out: deprecated, and removed from Linux in 4.14.
    /// </summary>
    public const ulong OffloadFeatures =
        VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostEcn |
        VirtioNetFeatures.HostUso | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 |
        VirtioNetFeatures.GuestEcn | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6 | VirtioNetFeatures.GuestHdrLen |
        VirtioNetFeatures.RscExt;

    /// <summary>
    /// The features carried by the control queue: VIRTIO_NET_F_CTRL_VQ and those that depend on it (§5.1.3.1: a driver
    /// must not accept CTRL_RX, CTRL_VLAN, GUEST_ANNOUNCE, MQ, CTRL_MAC_ADDR ... without CTRL_VQ).
    /// </summary>
    public const ulong ControlFeatures =
        VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlRxExtra | VirtioNetFeatures.CtrlVlan |
        VirtioNetFeatures.CtrlMacAddr | VirtioNetFeatures.GuestAnnounce | VirtioNetFeatures.CtrlGuestOffloads |
        VirtioNetFeatures.DeviceStats | MultiQueueFeatures;

    /// <summary>
    /// The multi-queue features, all carried by the control queue: MQ (queue pairs), RSS (steering), HASH_REPORT (the
    /// hash beside each frame), HASH_TUNNEL (the hash over tunnels' inner headers), NOTF_COAL and VQ_NOTF_COAL
    /// (notification coalescing). Ref: virtio v1.2 §5.1.6.5.5-§5.1.6.5.9; virtio v1.3 §5.1.6.4 (Inner Header Hash).
    /// </summary>
    public const ulong MultiQueueFeatures =
        VirtioNetFeatures.Mq | VirtioNetFeatures.Rss | VirtioNetFeatures.HashReport | VirtioNetFeatures.HashTunnel |
        VirtioNetFeatures.NotfCoal | VirtioNetFeatures.VqNotfCoal;

    /// <summary>Bits the caller refuses even when offered (for example to test the small receive mode). Default none.</summary>
    public ulong DisabledFeatures { get; init; }

    /// <summary>
    /// Negotiate the checksum and segmentation offloads (<see cref="OffloadFeatures"/>) when offered. Default true: the
    /// device then checksums and segments, and large receives save per-packet work. False sends and receives plain
    /// frames; the transmit calls that ask for offloads then do them in software.
    /// </summary>
    public bool Offloads { get; init; } = true;

    /// <summary>
    /// Negotiate VIRTIO_NET_F_RSC_EXT when offered (and <see cref="Offloads"/> is on, with GUEST_TSO4/6): the device then
    /// coalesces received TCP segments and says how many went into each frame
    /// (<see cref="Offloads.ReceivedFrameInfo.CoalescedSegments"/>, <see cref="VirtioNetQueueStatistics.CoalescedSegments"/>).
    /// Default false, as Linux's driver never negotiates it: the one device that offers it, QEMU's virtio-net with
    /// <c>guest_rsc_ext=on</c> (seen with 7.2 and 10.0), writes coalesced frames without NEEDS_CSUM or gso_size and leaves
    /// the first segment's TCP checksum and a stale IPv4 header checksum in them, so a stack that checks checksums drops
    /// every one (the driver reports them <see cref="Offloads.ReceivedChecksumState.None"/>, as §5.1.6.4.2 says); its
    /// source (virtio_net_rsc_drain_seg) also clears NEEDS_CSUM from segments it held but could not coalesce.
    /// </summary>
    public bool ReceiveCoalescingInfo { get; init; }

    /// <summary>
    /// Recompute the TCP/UDP checksum of received frames the device marks VIRTIO_NET_HDR_F_DATA_VALID instead of taking
    /// its word. Default true: a driver must not trust the device blindly, and DATA_VALID is rare from QEMU (a kernel
    /// peer's frames arrive with NEEDS_CSUM, which the driver completes anyway).
    /// </summary>
    public bool VerifyReceivedChecksums { get; init; } = true;

    /// <summary>Interrupt-driven or busy-poll. Default interrupt: a driver that spins burns a core while idle.</summary>
    public OperationMode OperationMode { get; init; } = OperationMode.Interrupt;

    /// <summary>
    /// With <see cref="OperationMode.Adaptive"/>: the most looks at a receive queue's used ring a wait makes before it
    /// asks for a notification and sleeps (each look is one read of used.idx and a short spin, tens of nanoseconds), 1 to
    /// 1,000,000. The budget in use adapts between a sixteenth of this and this. Default 512: about 20-50 µs of polling,
    /// longer than the gap between frames of a busy link and far shorter than the gap at a few thousand frames a second.
    /// Ignored in the other modes.
    /// </summary>
    public int BusyPollBudget { get; init; } = 512;

    /// <summary>
    /// Upper bound on each queue's size; the device's QueueNumMax (rounded down to a power of two) wins when smaller.
    /// Default 256: QEMU's PCI maximum and Linux's default, enough for line rate with batching.
    /// </summary>
    public int MaxQueueSize { get; init; } = 256;

    /// <summary>
    /// How many queue pairs to set up when the device offers VIRTIO_NET_F_MQ or RSS (capped at its max_virtqueue_pairs),
    /// 1 to 0x8000. Default 1: the single-queue calls (TryReceive, TrySend) use pair 1 only, and with more pairs active
    /// the device would steer frames to queues nobody reads; ask for more when a worker serves each pair.
    /// </summary>
    public int QueuePairs { get; init; } = 1;

    /// <summary>
    /// The MTU the driver sizes its buffers for when the device reports none (no VIRTIO_NET_F_MTU), 68 to 65535. Such a
    /// device sets no bound of its own (§5.1.4.1 gives the mtu field only with the feature), so the bound is the driver's
    /// buffer layout: transmit slots and the receive length check follow this value, and without MRG_RXBUF receive
    /// buffers become page chains that hold a whole frame (<see cref="ReceiveMode.Big"/>); mergeable buffers stay 1536
    /// bytes and a longer frame spans several. Ignored when the device offers VIRTIO_NET_F_MTU: its value is used. Default
    /// 1500: standard Ethernet, and transmit slots of one standard frame; ask for 9000 to carry jumbo frames.
    /// </summary>
    public int MaxMtu { get; init; } = EthernetFrame.DefaultMtu;

    /// <summary>A MAC address to use when the device offers none. Default null: a random locally administered one.</summary>
    public byte[]? FallbackMac { get; init; }

    /// <summary>
    /// How often the link status (and, with VIRTIO_NET_F_SPEED_DUPLEX, speed and duplex) is re-read in poll mode, where
    /// no configuration interrupt is taken. Default 100 ms: a link change is seen within a tenth of a second at the cost
    /// of one register read (three with speed and duplex).
    /// </summary>
    public TimeSpan LinkPollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Recover the device automatically (<see cref="VirtioNetDevice.Recover"/>) when it sets DEVICE_NEEDS_RESET (seen on
    /// a configuration interrupt, and in poll mode every <see cref="LinkPollInterval"/>) or breaks a ring the driver
    /// validates. Recovery then happens inside every data-path entry of every pair (<see cref="VirtioNetQueuePair"/>:
    /// the copying, burst and wait entries alike), <see cref="VirtioNetDevice.ProcessEvents"/> and
    /// <see cref="VirtioNetDevice.CheckHealth"/>, which carry on as if no frame had arrived (nothing sent: send again).
    /// Default false: without it every fault reaches the caller as a <see cref="VirtioException"/>, which is what a
    /// caller that wants to decide (or a test of a lying device) needs; a long-running service turns it on.
    /// </summary>
    public bool AutoRecover { get; init; }

    /// <summary>
    /// The transmit watchdog: a transmit queue that holds frames the device has not returned, and from which the device
    /// returned nothing for this long while the link is up, has timed out. It is counted
    /// (<see cref="VirtioNetQueueStatistics.TransmitTimeouts"/>), reported on <see cref="VirtioNetDevice.Events"/>, and
    /// with <see cref="AutoRecover"/> the device is recovered (<see cref="VirtioNetDevice.Recover"/>), as Linux's
    /// <c>ndo_tx_timeout</c> and FreeBSD vtnet's watchdog do. Default 5 s, as both of them: a device that keeps a frame
    /// that long is stuck (QEMU and DPDK return a frame in microseconds), while a machine paused for a moment is not
    /// taken for one. <see cref="Timeout.InfiniteTimeSpan"/> turns the watchdog off. It runs on a timer, a few times per
    /// timeout, and reads only the driver's counters and the rings' used indexes: nothing on the packet path.
    /// </summary>
    public TimeSpan TransmitTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a control command may take before it fails with <see cref="VirtioErrorReason.Timeout"/> (and the control
    /// queue is given up until a reset). Default 1 s: QEMU answers in well under a millisecond, so a second means the
    /// device is stuck, while a caller that waits for a link or a filter change is not held long.
    /// </summary>
    public TimeSpan ControlCommandTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How many addresses (unicast and multicast together) the driver puts in the device's MAC filter table before it
    /// falls back to all-unicast/promiscuous or all-multicast. Default 64: QEMU's table size (MAC_TABLE_ENTRIES); the
    /// spec gives no way to ask a device for its size, and deciding here makes the fallback visible to the caller.
    /// </summary>
    public int MacFilterCapacity { get; init; } = 64;

    /// <summary>
    /// The features to offer to negotiation. Disabling VIRTIO_NET_F_CTRL_VQ also withdraws every feature that needs it,
    /// and disabling CTRL_RX withdraws CTRL_RX_EXTRA (§5.1.3.1).
    /// </summary>
    public ulong SupportedFeatures =>
        WithoutUnmetDependencies(ImplementedFeatures & ~DisabledFeatures & (Offloads ? ulong.MaxValue : ~OffloadFeatures) &
            (ReceiveCoalescingInfo ? ulong.MaxValue : ~VirtioNetFeatures.RscExt));

    /// <summary>
    /// <see cref="SupportedFeatures"/> with the bits above 63 this driver implements (feature words 2 and 3, §5.1.3):
    /// what <see cref="VirtioNetDevice"/> offers to negotiation.
    /// </summary>
    public VirtioFeatureSet SupportedFeatureSet =>
        WithoutUnmetDependencies((new VirtioFeatureSet(SupportedFeatures, 0) | (Offloads ? HighOffloadFeatures : VirtioFeatureSet.None))
            .Without(new VirtioFeatureSet(0, DisabledFeaturesHigh)));

    /// <summary>
    /// The features above 63 this driver implements, all offloads (withdrawn with <see cref="Offloads"/> = false): the
    /// UDP tunnel segmentation offloads GUEST_UDP_TUNNEL_GSO(_CSUM) and HOST_UDP_TUNNEL_GSO(_CSUM) (virtio v1.4 §5.1.3;
    /// software segmentation of tunnelled TCP when the HOST ones are absent). RSS_CONTEXT, OUT_NET_HEADER and IPSEC are not.
    /// </summary>
    public static readonly VirtioFeatureSet HighOffloadFeatures =
        VirtioNetFeatures.GuestUdpTunnelGso | VirtioNetFeatures.GuestUdpTunnelGsoCsum | VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.HostUdpTunnelGsoCsum;

    /// <summary>
    /// Bits 64 to 127 the caller refuses even when offered, as <see cref="VirtioFeatureSet.High"/> holds them (bit 64 in
    /// bit 0), e.g. <c>VirtioNetFeatures.HostUdpTunnelGso.High</c>. Default none.
    /// </summary>
    public ulong DisabledFeaturesHigh { get; init; }

    /// <summary>
    /// <see cref="WithoutUnmetDependencies(ulong)"/> over all 128 bits, with the rules of the bits above 63 (virtio v1.4
    /// §5.1.3.1): GUEST_UDP_TUNNEL_GSO needs GUEST_TSO4, GUEST_TSO6, GUEST_USO4 and GUEST_USO6; HOST_UDP_TUNNEL_GSO needs
    /// HOST_TSO4, HOST_TSO6 and HOST_USO; each _CSUM variant needs its GSO feature; RSS_CONTEXT needs CTRL_VQ and RSS.
    /// </summary>
    public static VirtioFeatureSet WithoutUnmetDependencies(VirtioFeatureSet features)
    {
        ulong low = WithoutUnmetDependencies(features.Low);
        var f = new VirtioFeatureSet(low, features.High);
        const ulong guestInner = VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;
        const ulong hostInner = VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUso;
        if ((low & guestInner) != guestInner)
        {
            f = f.Without(VirtioNetFeatures.GuestUdpTunnelGso);
        }

        if (!f.ContainsAny(VirtioNetFeatures.GuestUdpTunnelGso))
        {
            f = f.Without(VirtioNetFeatures.GuestUdpTunnelGsoCsum);
        }

        if ((low & hostInner) != hostInner)
        {
            f = f.Without(VirtioNetFeatures.HostUdpTunnelGso);
        }

        if (!f.ContainsAny(VirtioNetFeatures.HostUdpTunnelGso))
        {
            f = f.Without(VirtioNetFeatures.HostUdpTunnelGsoCsum);
        }

        if ((low & (VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Rss)) != (VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Rss))
        {
            f = f.Without(VirtioNetFeatures.RssContext);
        }

        return f;
    }

    /// <summary>
    /// <paramref name="features"/> without every bit whose required feature is absent (§5.1.3.1 feature bit
    /// requirements; §2.2.1: the driver must not accept a feature that requires one it did not accept): segmentation
    /// without the checksum offload of its direction, ECN without TSO, the control-queue features without CTRL_VQ,
    /// CTRL_RX_EXTRA without CTRL_RX, RSC_EXT without HOST_TSO4/6, HASH_TUNNEL without RSS or HASH_REPORT. Applied to
    /// what the driver supports, and at negotiation to what the device offers of it, since a device may offer a feature
    /// without the one it requires (QEMU offers HOST_TSO4/6, HOST_ECN and HOST_USO with <c>csum=off</c>). Rules run in
    /// dependency order, so a dropped feature takes its dependants with it.
    /// </summary>
    public static ulong WithoutUnmetDependencies(ulong features)
    {
        ulong f = features;
        if ((f & VirtioNetFeatures.GuestCsum) == 0)
        {
            f &= ~(VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestUfo | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6);
        }

        if ((f & VirtioNetFeatures.Csum) == 0)
        {
            f &= ~(VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUfo | VirtioNetFeatures.HostUso);
        }

        if ((f & (VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6)) == 0)
        {
            f &= ~VirtioNetFeatures.GuestEcn;
        }

        if ((f & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6)) == 0)
        {
            f &= ~(VirtioNetFeatures.HostEcn | VirtioNetFeatures.RscExt);
        }

        // RSC_EXT reports on coalesced receives, so it also needs GUEST_TSO4 or GUEST_TSO6 (§5.1.6.4); §5.1.3.1 lists
        // HOST_TSO4 or HOST_TSO6 as its requirement (above). Both are asked.
        if ((f & (VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6)) == 0)
        {
            f &= ~VirtioNetFeatures.RscExt;
        }

        if ((f & VirtioNetFeatures.CtrlVq) == 0)
        {
            // Also HASH_REPORT and CTRL_RX_EXTRA, which the driver should not negotiate without CTRL_VQ (§5.1.4.2).
            f &= ~ControlFeatures;
        }

        if ((f & VirtioNetFeatures.CtrlRx) == 0)
        {
            f &= ~VirtioNetFeatures.CtrlRxExtra;
        }

        if ((f & (VirtioNetFeatures.Rss | VirtioNetFeatures.HashReport)) == 0)
        {
            f &= ~VirtioNetFeatures.HashTunnel;
        }

        return f;
    }

    /// <summary>Checks the values; called by the device before use.</summary>
    public void Validate()
    {
        if (MaxQueueSize < 2 || MaxQueueSize > 32768 || (MaxQueueSize & (MaxQueueSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxQueueSize), MaxQueueSize, "MaxQueueSize must be a power of two from 2 to 32768.");
        }

        if (FallbackMac is { Length: not EthernetFrame.AddressLength })
        {
            throw new ArgumentException("FallbackMac must be 6 bytes.", nameof(FallbackMac));
        }

        if (LinkPollInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(LinkPollInterval), LinkPollInterval, "LinkPollInterval must be positive.");
        }

        if (ControlCommandTimeout <= TimeSpan.Zero || ControlCommandTimeout > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(ControlCommandTimeout), ControlCommandTimeout, "ControlCommandTimeout must be positive and at most 10 minutes.");
        }

        if (TransmitTimeout != Timeout.InfiniteTimeSpan && (TransmitTimeout < TimeSpan.FromMilliseconds(10) || TransmitTimeout > TimeSpan.FromHours(1)))
        {
            throw new ArgumentOutOfRangeException(nameof(TransmitTimeout), TransmitTimeout, "TransmitTimeout must be 10 ms to 1 hour, or Timeout.InfiniteTimeSpan to turn the watchdog off.");
        }

        if (QueuePairs is < 1 or > 0x8000)
        {
            throw new ArgumentOutOfRangeException(nameof(QueuePairs), QueuePairs, "QueuePairs must be 1 to 32768 (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN to _MAX).");
        }

        if (MaxMtu is < EthernetFrame.MinimumMtu or > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxMtu), MaxMtu, "MaxMtu must be 68 to 65535 (the range of the mtu field, §5.1.4.1).");
        }

        if (BusyPollBudget is < 1 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(BusyPollBudget), BusyPollBudget, "BusyPollBudget must be 1 to 1,000,000 looks.");
        }

        if (MacFilterCapacity is < 0 or > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(MacFilterCapacity), MacFilterCapacity, "MacFilterCapacity must be 0 to 4096.");
        }
    }
}
