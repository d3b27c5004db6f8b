using VirtioNet.Core;

namespace VirtioNet.Cli.Config;

/// <summary>
/// What a <c>virtio-net.toml</c> file says, key by key: null for a key the file does not give (the command-line flag or
/// its default decides). Each property names its key; docs/virtio-net.toml gives every key's default and meaning.
/// </summary>
internal sealed class VnetConfig
{
    /// <summary>[device] backend: "qemu" or "vhost-user".</summary>
    public string? Backend { get; set; }

    /// <summary>[device] vhost_user_socket.</summary>
    public string? VhostUserSocket { get; set; }

    /// <summary>[device] vhost_user_listen.</summary>
    public bool? VhostUserListen { get; set; }

    /// <summary>[device] transport.</summary>
    public string? Transport { get; set; }

    /// <summary>[device] pci_interrupts.</summary>
    public string? PciInterrupts { get; set; }

    /// <summary>[device] mac, as QEMU's mac= property takes it.</summary>
    public string? Mac { get; set; }

    /// <summary>[device] mtu: QEMU's host_mtu= (VIRTIO_NET_F_MTU).</summary>
    public int? Mtu { get; set; }

    /// <summary>[device] queue_pairs.</summary>
    public int? QueuePairs { get; set; }

    /// <summary>[device] ring_layout: "split" or "packed".</summary>
    public string? RingLayout { get; set; }

    /// <summary>[device] withhold_features, as feature bits.</summary>
    public VirtioFeatureSet? WithheldFeatures { get; set; }

    /// <summary>[device] offloads: the feature bits behind the offloads turned off.</summary>
    public VirtioFeatureSet? OffloadsOff { get; set; }

    /// <summary>[device] kernel_offloads.</summary>
    public bool? KernelOffloads { get; set; }

    /// <summary>[performance] burst_size.</summary>
    public int? BurstSize { get; set; }

    /// <summary>[performance] ring_size: the driver's cap on every queue's size.</summary>
    public int? RingSize { get; set; }

    /// <summary>[performance] mode: "interrupt", "poll" or "adaptive".</summary>
    public string? Mode { get; set; }

    /// <summary>[performance] busy_poll_budget: the adaptive mode's most looks before a sleep; 0 for the driver's default.</summary>
    public int? BusyPollBudget { get; set; }

    /// <summary>[performance] rx_coalesce_usecs.</summary>
    public uint? RxCoalesceMicroseconds { get; set; }

    /// <summary>[performance] rx_coalesce_frames.</summary>
    public uint? RxCoalesceFrames { get; set; }

    /// <summary>[performance] tx_coalesce_usecs.</summary>
    public uint? TxCoalesceMicroseconds { get; set; }

    /// <summary>[performance] tx_coalesce_frames.</summary>
    public uint? TxCoalesceFrames { get; set; }

    /// <summary>[performance] pair_cpus.</summary>
    public IReadOnlyList<int>? PairCpus { get; set; }

    /// <summary>[debug] log_level.</summary>
    public string? LogLevel { get; set; }

    /// <summary>[debug] register_dump_on_error.</summary>
    public bool? RegisterDumpOnError { get; set; }

    /// <summary>[platform] machine.</summary>
    public string? Machine { get; set; }

    /// <summary>[platform] qemu.</summary>
    public string? Qemu { get; set; }

    /// <summary>[platform] device_properties.</summary>
    public string? DeviceProperties { get; set; }

    /// <summary>[platform] netdev.</summary>
    public string? Netdev { get; set; }

    /// <summary>[platform] namespace.</summary>
    public string? Namespace { get; set; }

    /// <summary>[platform] tap.</summary>
    public string? Tap { get; set; }

    /// <summary>[platform] name.</summary>
    public string? Name { get; set; }

    /// <summary>[platform] dhcp.</summary>
    public bool? Dhcp { get; set; }
}
