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
        VirtioFeatures.AnyLayout | VirtioFeatures.RingPacked;

    /// <summary>Bits the caller refuses even when offered (for example to test the small receive mode). Default none.</summary>
    public ulong DisabledFeatures { get; init; }

    /// <summary>Interrupt-driven or busy-poll. Default interrupt: a driver that spins burns a core while idle.</summary>
    public OperationMode Mode { get; init; } = OperationMode.Interrupt;

    /// <summary>
    /// Upper bound on each queue's size; the device's QueueNumMax (rounded down to a power of two) wins when smaller.
    /// Default 256: QEMU's PCI maximum and Linux's default, enough for line rate with batching.
    /// </summary>
    public int MaxQueueSize { get; init; } = 256;

    /// <summary>A MAC address to use when the device offers none. Default null: a random locally administered one.</summary>
    public byte[]? FallbackMac { get; init; }

    /// <summary>
    /// How often the link status is re-read in poll mode, where no configuration interrupt is taken. Default 100 ms:
    /// a link change is seen within a tenth of a second at the cost of one register read.
    /// </summary>
    public TimeSpan LinkPollInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The features to offer to negotiation.</summary>
    public ulong SupportedFeatures => ImplementedFeatures & ~DisabledFeatures;

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
    }
}
