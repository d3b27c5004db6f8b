using System.CommandLine;
using System.Text.RegularExpressions;
using VirtioNet.Cli;
using VirtioNet.Cli.Commands;
using VirtioNet.Cli.Config;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.Tests.Cli;

/// <summary>
/// virtio-net.toml: every key of each section is read into the configuration and lands in vnet up's settings, flags
/// given on the command line win, and every fault (not TOML, unknown section or key, wrong type, out of range, a key
/// not honoured yet, keys that contradict each other) is reported with its line and column.
/// </summary>
public sealed partial class ConfigReaderTests
{
    private static VnetConfig Valid(string text)
    {
        (VnetConfig config, IReadOnlyList<ConfigError> errors) = ConfigReader.Read(text, "test.toml");
        Assert.Empty(errors);
        return config;
    }

    private static ConfigError OneError(string text)
    {
        (_, IReadOnlyList<ConfigError> errors) = ConfigReader.Read(text, "test.toml");
        return Assert.Single(errors);
    }

    [Fact]
    public void TheExampleFileIsValidAndSetsEveryKeyToItsDefaultInItsSection()
    {
        string path = RepositoryFiles.PathOf("docs", "virtio-net.toml");
        (_, IReadOnlyList<ConfigError> errors) = ConfigReader.ReadFile(path);
        Assert.Empty(errors);

        // Each key appears once, as "name = DEFAULT", below its own [section] header and before the next one.
        string[] lines = File.ReadAllLines(path);
        foreach (ConfigKey key in ConfigSchema.Keys)
        {
            int header = Array.IndexOf(lines, $"[{key.Section}]");
            Assert.True(header >= 0, $"[{key.Section}] is missing from the example.");
            int next = Array.FindIndex(lines, header + 1, l => l.StartsWith('['));
            IEnumerable<string> section = lines[(header + 1)..(next < 0 ? lines.Length : next)];
            Assert.Contains($"{key.Name} = {key.Default}", section);
            Assert.True(lines[Array.IndexOf(lines, $"{key.Name} = {key.Default}") - 1].StartsWith('#'), $"{key.Name} has no comment saying what it means.");
        }

        Assert.Equal(ConfigSchema.Keys.Count, lines.Count(l => KeyLine().IsMatch(l)));
    }

    [Fact]
    public void DeviceSectionKeysAreReadAndBecomeQemuPropertiesAndWithheldFeatures()
    {
        VnetConfig config = Valid("""
            [device]
            transport = "pci"
            pci_interrupts = "msix"
            mac = "52:54:00:AB:CD:EF"
            mtu = 9000
            queue_pairs = 2
            ring_layout = "packed"
            withhold_features = ["VIRTIO_F_EVENT_IDX", "VIRTIO_NET_F_GUEST_TSO4", "65"]
            offloads = { tx-checksumming = false, rx-checksumming = true }
            kernel_offloads = false
            [platform]
            netdev = "tap=qt0"
            """);
        Assert.Equal("pci", config.Transport);
        Assert.Equal("msix", config.PciInterrupts);
        Assert.Equal("52:54:00:ab:cd:ef", config.Mac);
        Assert.Equal(9000, config.Mtu);
        Assert.Equal(2, config.QueuePairs);
        Assert.Equal(VirtioFeatures.EventIdx | VirtioNetFeatures.GuestTso4 | VirtioFeatureSet.FromBit(65), config.WithheldFeatures);
        Assert.Equal((VirtioFeatureSet)VirtioNetFeatures.Csum, config.OffloadsOff);
        Assert.False(config.KernelOffloads);

        MachineSettings settings = Settings(config, "up");
        Assert.Equal("pci", settings.Transport);
        Assert.False(settings.ModernMmio);
        Assert.Equal("msix", settings.PciInterrupts);
        Assert.Equal("mac=52:54:00:ab:cd:ef,host_mtu=9000,packed=on", settings.DeviceOptions);

        Assert.Equal("vhost-user", Valid("[device]\nbackend = \"vhost-user\"\nvhost_user_socket = \"/tmp/vh.sock\"\nvhost_user_listen = true").Backend);
    }

    [Fact]
    public void AdaptiveModeIsReadWithItsBusyPollBudget()
    {
        VnetConfig config = Valid("""
            [performance]
            mode = "adaptive"
            busy_poll_budget = 128
            """);
        Assert.Equal("adaptive", config.Mode);
        Assert.Equal(128, config.BusyPollBudget);
    }

    [Fact]
    public void PerformanceSectionKeysAreRead()
    {
        VnetConfig config = Valid("""
            [device]
            queue_pairs = 2
            [performance]
            burst_size = 128
            ring_size = 1024
            mode = "poll"
            busy_poll_budget = 0
            rx_coalesce_usecs = 50
            rx_coalesce_frames = 16
            tx_coalesce_usecs = 10
            tx_coalesce_frames = 8
            pair_cpus = [0, 0]
            [platform]
            netdev = "tap=qt0"
            """);
        Assert.Equal(128, config.BurstSize);
        Assert.Equal(1024, config.RingSize);
        Assert.Equal("poll", config.Mode);
        Assert.Equal(50u, config.RxCoalesceMicroseconds);
        Assert.Equal(16u, config.RxCoalesceFrames);
        Assert.Equal(10u, config.TxCoalesceMicroseconds);
        Assert.Equal(8u, config.TxCoalesceFrames);
        Assert.Equal([0, 0], config.PairCpus);
        Assert.Equal(OperationMode.Poll, Settings(config, "up").Mode);
    }

    [Fact]
    public void DebugSectionKeysAreRead()
    {
        VnetConfig config = Valid("[debug]\nlog_level = \"warning\"\ncapture_at_start = \"\"\nregister_dump_on_error = true");
        Assert.Equal("warning", config.LogLevel);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, Log.Levels[config.LogLevel!]);
        Assert.True(config.RegisterDumpOnError);
    }

    [Fact]
    public void PlatformSectionKeysAreReadAndFlagsGivenOnTheCommandLineWin()
    {
        VnetConfig config = Valid("""
            [device]
            transport = "pci"
            [platform]
            machine = "x86_64-q35"
            qemu = "/opt/virtionet/qemu-10.0/bin/qemu-system-x86_64"
            device_properties = "mrg_rxbuf=off"
            netdev = "socket=udp=127.0.0.1:1,localaddr=127.0.0.1:2"
            namespace = "ns1"
            tap = "tap7"
            name = "seven"
            dhcp = true
            """);
        Assert.Equal("ns1", config.Namespace);
        Assert.Equal("tap7", config.Tap);
        Assert.Equal("seven", config.Name);
        Assert.True(config.Dhcp);
        Assert.Equal("socket=udp=127.0.0.1:1,localaddr=127.0.0.1:2", config.Netdev);

        MachineSettings fromFile = Settings(config, "up");
        Assert.Equal(QemuMachineKind.X86Q35, fromFile.Machine);
        Assert.Equal("/opt/virtionet/qemu-10.0/bin/qemu-system-x86_64", fromFile.QemuPath);
        Assert.Equal("mrg_rxbuf=off", fromFile.DeviceOptions);

        // Flags given win over the file; flags left at their defaults do not.
        MachineSettings flags = Settings(config, "up", "--machine", "riscv64-virt", "--transport", "mmio", "--device-opts", "event_idx=off", "--qemu", "qemu-x");
        Assert.Equal(QemuMachineKind.RiscvVirt, flags.Machine);
        Assert.Equal("mmio", flags.Transport);
        Assert.True(flags.ModernMmio);
        Assert.Equal("event_idx=off", flags.DeviceOptions);
        Assert.Equal("qemu-x", flags.QemuPath);
    }

    [Theory]
    [InlineData("[device]\nqueue_pairs = 100", 2, 15, "[device] queue_pairs must be 1 to 64; got 100")]
    [InlineData("[device]\nmtu = \"big\"", 2, 7, "[device] mtu takes a whole number; got a string")]
    [InlineData("[device]\n\ncolour = \"blue\"", 3, 1, "unknown key 'colour' in [device]")]
    [InlineData("[device]\nlog_level = \"debug\"", 2, 1, "unknown key 'log_level' in [device] (it belongs in [debug])")]
    [InlineData("[nonsense]\nx = 1", 1, 1, "unknown section [nonsense] (the sections are [device], [performance], [debug], [platform])")]
    [InlineData("queue_pairs = 2", 1, 1, "'queue_pairs' is outside any section; keys belong in [device], [performance], [debug], [platform]")]
    [InlineData("[performance]\nring_size = 1000", 2, 13, "[performance] ring_size must be a power of two from 2 to 32768; got 1000")]
    [InlineData("[performance]\nmode = \"turbo\"", 2, 8, "[performance] mode")]
    [InlineData("[performance]\nbusy_poll_budget = 64", 2, 1, "[performance] busy_poll_budget applies to mode = \"adaptive\" (mode is \"interrupt\"); set the mode or remove the key")]
    [InlineData("[performance]\nmode = \"adaptive\"\nbusy_poll_budget = 2000000", 3, 20, "[performance] busy_poll_budget must be 0 to 1000000; got 2000000")]
    [InlineData("[debug]\ncapture_at_start = \"rx.pcapng\"", 2, 20, "[debug] capture_at_start: capturing from the start is not there yet (capture a running instance instead); remove the key or set \"\"")]
    [InlineData("[device]\nwithhold_features = [\"VIRTIO_NET_F_TELEPORT\"]", 2, 21, "[device] withhold_features: \"VIRTIO_NET_F_TELEPORT\" is not a feature (a name such as \"VIRTIO_NET_F_GUEST_TSO4\", or a bit number 0 to 127)")]
    [InlineData("[device]\noffloads = { warp-drive = false }", 2, 12, "[device] offloads: 'warp-drive' is not an offload")]
    [InlineData("[device]\nmac = \"52:54:00\"", 2, 7, "[device] mac takes a MAC address such as \"52:54:00:12:34:56\"; got \"52:54:00\"")]
    [InlineData("[device]\nbackend = \"vhost-user\"", 2, 1, "[device] backend = \"vhost-user\" needs [device] vhost_user_socket (the backend's unix socket)")]
    [InlineData("[device]\nbackend = \"vhost-user\"\nvhost_user_socket = \"/tmp/x\"\nmac = \"52:54:00:00:00:01\"", 4, 1, "mac sets up the QEMU machine's device; with backend = \"vhost-user\" the backend's device is used as it is")]
    [InlineData("[device]\ntransport = \"mmio\"\n[platform]\nmachine = \"x86_64-q35\"", 2, 1, "[platform] machine = \"x86_64-q35\" has no virtio-mmio slots: transport must be \"pci\" or \"pci-legacy\" (got \"mmio\")")]
    [InlineData("[device]\nqueue_pairs = 2", 2, 1, "QEMU's user network has one queue: queue_pairs above 1 needs [platform] netdev = \"tap=IFNAME\" or backend = \"vhost-user\"")]
    [InlineData("[platform]\ntap = \"a-name-far-too-long\"", 2, 7, "[platform] tap: interface name 'a-name-far-too-long' must be 1 to 15 bytes long (IFNAMSIZ)")]
    [InlineData("[device\nx = 1", 1, 8, "not TOML:")]
    public void EveryFaultIsReportedWithItsLineAndColumn(string text, int line, int column, string message)
    {
        ConfigError error = text.StartsWith("[device\n", StringComparison.Ordinal)
            ? ConfigReader.Read(text, "test.toml").Errors[0]
            : OneError(text);
        Assert.Equal(("test.toml", line, column), (error.File, error.Line, error.Column));
        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
        Assert.StartsWith($"test.toml:{line}:{column}: ", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void EveryFaultOfAFileIsReportedNotOnlyTheFirst()
    {
        (_, IReadOnlyList<ConfigError> errors) = ConfigReader.Read("[device]\nqueue_pairs = 0\nmtu = 12\n[debug]\nlog_level = 3\nverbose = true", "test.toml");
        Assert.Equal([2, 3, 5, 6], errors.Select(e => e.Line));
    }

    [Fact]
    public void ConfigCheckExitsWithTwoOnAFaultyOrMissingFileAndZeroOnTheExample()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vnet-config-{Environment.ProcessId}-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, "[device]\nqueue_pairs = \"two\"\n");
        try
        {
            Assert.Equal(CommandRunner.Usage, ConfigCommand.Check(path));
        }
        finally
        {
            File.Delete(path);
        }

        Assert.Equal(CommandRunner.Usage, ConfigCommand.Check(path));
        Assert.Equal(0, ConfigCommand.Check(RepositoryFiles.PathOf("docs", "virtio-net.toml")));
    }

    // vnet up's machine settings from the file and the given command line.
    private static MachineSettings Settings(VnetConfig config, params string[] args)
    {
        var root = new RootCommand();
        root.Subcommands.Add(UpCommand.Create());
        ParseResult result = root.Parse(args);
        Assert.Empty(result.Errors);
        return UpCommand.WithFile(CommonOptions.Read(result), result, config);
    }

    [GeneratedRegex("^[a-z_]+ = ")]
    private static partial Regex KeyLine();
}
