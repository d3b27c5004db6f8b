using VirtioNet.Cli.Offloads;
using VirtioNet.Core;
using VirtioNet.Service;

namespace VirtioNet.Cli.Config;

/// <summary>
/// Every key <c>virtio-net.toml</c> takes, in the four sections of the MINIX driver's virtio_net.conf: [device] (the
/// device and how it is driven), [performance] (tuning), [debug] and [platform] (the QEMU machine and the interface).
/// A key not listed here is an error, never ignored. Each key maps to an option of <c>vnet up</c> or of the driver.
/// </summary>
internal static class ConfigSchema
{
    /// <summary>The sections, in the order the example file lists them.</summary>
    public static IReadOnlyList<string> Sections { get; } = ["device", "performance", "debug", "platform"];

    /// <summary>Every key, section by section.</summary>
    public static IReadOnlyList<ConfigKey> Keys { get; } =
    [
        new("device", "backend", "\"qemu\"", (v, c) => c.Backend = v.Choice("qemu", "vhost-user")),
        new("device", "vhost_user_socket", "\"\"", (v, c) => c.VhostUserSocket = NonEmpty(v)),
        new("device", "vhost_user_listen", "false", (v, c) => c.VhostUserListen = v.Boolean()),
        new("device", "transport", "\"mmio\"", (v, c) => c.Transport = v.Choice("mmio", "mmio-legacy", "pci", "pci-legacy")),
        new("device", "pci_interrupts", "\"intx\"", (v, c) => c.PciInterrupts = v.Choice("intx", "msix", "msix-per-queue")),
        new("device", "mac", "\"\"", (v, c) => c.Mac = Mac(v)),
        new("device", "mtu", "0", (v, c) => c.Mtu = Mtu(v)),
        new("device", "queue_pairs", "1", (v, c) => c.QueuePairs = (int)v.Integer(1, 64)),
        new("device", "ring_layout", "\"\"", (v, c) => c.RingLayout = v.Choice("", "split", "packed")),
        new("device", "withhold_features", "[]", (v, c) => c.WithheldFeatures = Features(v)),
        new("device", "offloads", "{}", (v, c) => c.OffloadsOff = OffloadsOff(v)),
        new("device", "kernel_offloads", "true", (v, c) => c.KernelOffloads = v.Boolean()),
        new("performance", "burst_size", "64", (v, c) => c.BurstSize = (int)v.Integer(DeviceLink.PairPort.MinimumBurst, DeviceLink.PairPort.MaximumBurst)),
        new("performance", "ring_size", "256", (v, c) => c.RingSize = RingSize(v)),
        new("performance", "mode", "\"interrupt\"", (v, c) => c.Mode = Mode(v)),
        new("performance", "busy_poll_budget", "0", (v, c) => c.BusyPollBudget = (int)v.Integer(0, 1_000_000)),
        new("performance", "rx_coalesce_usecs", "0", (v, c) => c.RxCoalesceMicroseconds = (uint)v.Integer(0, uint.MaxValue)),
        new("performance", "rx_coalesce_frames", "0", (v, c) => c.RxCoalesceFrames = (uint)v.Integer(0, uint.MaxValue)),
        new("performance", "tx_coalesce_usecs", "0", (v, c) => c.TxCoalesceMicroseconds = (uint)v.Integer(0, uint.MaxValue)),
        new("performance", "tx_coalesce_frames", "0", (v, c) => c.TxCoalesceFrames = (uint)v.Integer(0, uint.MaxValue)),
        new("performance", "pair_cpus", "[]", (v, c) => c.PairCpus = v.Integers(0, Environment.ProcessorCount - 1)),
        new("debug", "log_level", "\"information\"", (v, c) => c.LogLevel = v.Choice([.. Log.Levels.Keys])),
        new("debug", "capture_at_start", "\"\"", (v, _) => NotYet(v, v.String().Length != 0, "capturing from the start is not there yet (capture a running instance instead); remove the key or set \"\"")),
        new("debug", "register_dump_on_error", "false", (v, c) => c.RegisterDumpOnError = v.Boolean()),
        new("platform", "machine", "\"riscv64-virt\"", (v, c) => c.Machine = v.Choice("riscv64-virt", "x86_64-q35")),
        new("platform", "qemu", "\"\"", (v, c) => c.Qemu = NonEmpty(v)),
        new("platform", "device_properties", "\"\"", (v, c) => c.DeviceProperties = v.String()),
        new("platform", "netdev", "\"user\"", (v, c) => c.Netdev = Netdev(v)),
        new("platform", "namespace", "\"\"", (v, c) => c.Namespace = NonEmpty(v)),
        new("platform", "tap", "\"vnet0\"", (v, c) => c.Tap = Tap(v)),
        new("platform", "name", "\"\"", (v, c) => c.Name = NonEmpty(v)),
        new("platform", "dhcp", "false", (v, c) => c.Dhcp = v.Boolean()),
    ];

    /// <summary>The key <paramref name="name"/> of <paramref name="section"/>, or null.</summary>
    public static ConfigKey? Find(string section, string name) => Keys.FirstOrDefault(k => k.Section == section && k.Name == name);

    private static string? NonEmpty(ConfigValue value) => value.String() is { Length: > 0 } text ? text : null;

    private static string? Mac(ConfigValue value)
    {
        string text = value.String();
        if (text.Length == 0)
        {
            return null;
        }

        string[] parts = text.Split(':');
        return parts.Length == 6 && parts.All(p => p.Length == 2 && p.All(Uri.IsHexDigit))
            ? text.ToLowerInvariant()
            : throw new ConfigValueException($"{value.Key} takes a MAC address such as \"52:54:00:12:34:56\"; got \"{text}\"");
    }

    private static int? Mtu(ConfigValue value)
    {
        long mtu = value.Integer(0, 65535);
        return mtu switch
        {
            0 => null,
            < 68 => throw new ConfigValueException($"{value.Key} must be 0 (the device's own) or 68 to 65535; got {mtu}"),
            _ => (int)mtu,
        };
    }

    private static int RingSize(ConfigValue value)
    {
        long size = value.Integer(2, 32768);
        return (size & (size - 1)) == 0 ? (int)size : throw new ConfigValueException($"{value.Key} must be a power of two from 2 to 32768; got {size}");
    }

    private static string Mode(ConfigValue value) => value.Choice("interrupt", "poll", "adaptive");

    // Feature names as the driver lists them (VIRTIO_NET_F_GUEST_TSO4, VIRTIO_F_RING_PACKED, ...) or bit numbers as strings.
    private static VirtioFeatureSet Features(ConfigValue value)
    {
        VirtioFeatureSet bits = VirtioFeatureSet.None;
        foreach (string name in value.Strings())
        {
            int bit = -1;
            for (int b = 0; b < VirtioFeatureSet.BitCount && bit < 0; b++)
            {
                if (FeatureListing.Names(VirtioFeatureSet.FromBit(b))[0] == name)
                {
                    bit = b;
                }
            }

            if (bit < 0 && (!int.TryParse(name, System.Globalization.CultureInfo.InvariantCulture, out bit) || bit is < 0 or >= VirtioFeatureSet.BitCount))
            {
                throw new ConfigValueException($"{value.Key}: \"{name}\" is not a feature (a name such as \"VIRTIO_NET_F_GUEST_TSO4\", or a bit number 0 to 127)");
            }

            bits |= VirtioFeatureSet.FromBit(bit);
        }

        return bits;
    }

    // Offloads by ethtool's names; each one turned off has its feature bits withheld from negotiation.
    private static VirtioFeatureSet OffloadsOff(ConfigValue value)
    {
        VirtioFeatureSet bits = VirtioFeatureSet.None;
        foreach ((string name, bool on) in value.Switches())
        {
            Offload offload = OffloadCatalog.All.FirstOrDefault(o => o.Name == name)
                ?? throw new ConfigValueException($"{value.Key}: '{name}' is not an offload (use {string.Join(", ", OffloadCatalog.All.Select(o => o.Name))})");
            if (!on)
            {
                bits |= offload.Features;
            }
        }

        return bits;
    }

    private static string Netdev(ConfigValue value)
    {
        string text = value.String();
        return text == "user" || (text.StartsWith("tap=", StringComparison.Ordinal) && text.Length > 4) || (text.StartsWith("socket=", StringComparison.Ordinal) && text.Length > 7)
            ? text
            : throw new ConfigValueException($"{value.Key} takes \"user\", \"tap=IFNAME\" or \"socket=OPTIONS\"; got \"{text}\"");
    }

    private static string Tap(ConfigValue value)
    {
        string text = value.String();
        try
        {
            TapInterface.CheckName(text);
        }
        catch (ServiceException e)
        {
            throw new ConfigValueException($"{value.Key}: {e.Message}");
        }

        return text;
    }

    // A key the code cannot honour yet: its off value is accepted, anything else is refused with the reason.
    private static void NotYet(ConfigValue value, bool set, string why)
    {
        if (set)
        {
            throw new ConfigValueException($"{value.Key}: {why}");
        }
    }
}
