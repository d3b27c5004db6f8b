using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.IntegrationTests.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.Cli;

/// <summary>
/// <c>vnet bench</c> from the command line: the sweep with its chart against DPDK, interrupt mode against QEMU and DPDK
/// (frames counted, the mode reported, interrupts taken; never timings), and bad options.
/// </summary>
[Collection(VhostUserCollection.Name)]
public sealed class BenchCliTests
{
    [Theory]
    [InlineData("bench --chart out.png", "--chart needs --sizes")]
    [InlineData("bench --sizes 64,128", "give --vhost-user PATH")]
    [InlineData("bench --sizes 64,9000 --vhost-user /tmp/x.sock", "'9000' is not one")]
    [InlineData("bench --sizes 64 --vhost-user /tmp/x.sock --chart out.gif", ".png or .svg")]
    [InlineData("bench --size 20", "--size must be 60 to 1514")]
    [InlineData("bench --mode sideways", "sideways")]
    [InlineData("bench --mode interrupt", "--mode interrupt waits for received frames, and tx receives none: add --mode rx or --mode loopback.")]
    [InlineData("bench --mode tx --mode interrupt --vhost-user /tmp/x.sock", "add --mode rx or --mode loopback")]
    [InlineData("bench --mode rx --mode loopback", "--mode takes one direction (tx, rx, loopback or latency); got rx and loopback.")]
    [InlineData("bench --mode rx --mode poll --mode interrupt", "--mode takes one of poll, interrupt or adaptive; got poll and interrupt.")]
    [InlineData("bench --mode rx --busy-poll-budget 64 --vhost-user /tmp/x.sock", "--busy-poll-budget applies to --mode adaptive.")]
    [InlineData("bench --mode rx --transport pci --pci-interrupts msix", "add --mode interrupt")]
    [InlineData("bench --mode rx --mode interrupt --pci-interrupts msix --vhost-user /tmp/x.sock", "call eventfds")]
    [InlineData("bench --mode rx --mode interrupt --pci-interrupts intx", "needs --transport pci or pci-legacy; got mmio.")]
    [InlineData("bench --feature-mask 0xZZ --vhost-user /tmp/x.sock", "--feature-mask takes a hexadecimal mask")]
    [InlineData("bench --cpu one --vhost-user /tmp/x.sock", "--cpu takes CPU numbers (0 to 1023)")]
    [InlineData("bench --mode latency --rate -1 --vhost-user /tmp/x.sock", "--rate must be 0 (as fast as the ring takes frames) to 10000000")]
    [InlineData("bench --mode rx --rate 1000 --vhost-user /tmp/x.sock", "--rate paces the frames of --mode latency")]
    [InlineData("bench --mode latency --sizes 64,128 --vhost-user /tmp/x.sock", "--mode latency measures one queue pair at one frame size")]
    public void BadBenchOptionsAreOneClearErrorLine(string arguments, string expected)
    {
        VnetProcess.Result result = VnetProcess.Run(arguments.Split(' '));
        Assert.Equal(2, result.ExitCode);
        string[] errors = result.StandardError.Split('\n').Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal)).ToArray();
        Assert.Single(errors);
        Assert.Contains(expected, errors[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Peer", "Dpdk")]
    public void ASweepAgainstTestpmdReportsEverySizeAndDrawsTheChart()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("rxonly");
        string chart = Path.Combine(Path.GetTempPath(), $"vnet-sweep-{Environment.ProcessId}.png");
        try
        {
            VnetProcess.Result result = VnetProcess.Run(
                "bench", "--vhost-user", testpmd.SocketPath, "--mode", "tx", "--sizes", "64,512,1514", "--seconds", "0.5", "--chart", chart, "--json");
            Assert.True(result.ExitCode == 0, result.StandardError);

            using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
            Assert.Equal("poll", json.RootElement.GetProperty("operationMode").GetString());
            JsonElement[] rows = [.. json.RootElement.GetProperty("results").EnumerateArray()];
            Assert.Equal([64, 512, 1514], rows.Select(r => r.GetProperty("size").GetInt32()));
            Assert.All(rows, r => Assert.True(r.GetProperty("mpps").GetDouble() > 0));
            Assert.All(rows, r => Assert.Equal(0, r.GetProperty("allocatedBytes").GetInt64()));

            byte[] png = File.ReadAllBytes(chart);
            Assert.True(png.Length > 1000);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
        finally
        {
            File.Delete(chart);
        }
    }

    // Runs vnet bench with --json and returns the parsed figures, after checking the mode it reports.
    private static JsonDocument RunBench(string direction, string operationMode, params string[] arguments)
    {
        VnetProcess.Result result = VnetProcess.Run(["bench", "--mode", direction, "--mode", operationMode, "--seconds", "1", "--json", .. arguments]);
        Assert.True(result.ExitCode == 0, result.StandardError);
        JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal(direction, json.RootElement.GetProperty("mode").GetString());
        Assert.Equal(operationMode, json.RootElement.GetProperty("operationMode").GetString());
        return json;
    }

    // Interrupt mode: frames were received, and receive waits were ended by interrupts the driver acknowledged.
    // `backendFloods`: testpmd sends (txonly) or returns (macswap) as fast as it can, so whether the receive queue ever
    // runs empty, and the worker sleeps until an interrupt, depends on how fast this machine runs the driver against it
    // (on a quiet machine a 1 s run waited once, and was never woken by an interrupt). Those rows check that interrupt
    // mode ran and delivered; the wake-up by the call eventfds is proven where the traffic leaves the queue empty
    // (VhostUserMultiQueueInterruptTests, VhostUserTrafficTests) and by the QEMU rows here, whose peer paces the frames.
    private static void AssertReceivedByInterrupts(JsonElement r, string direction, bool backendFloods = false)
    {
        long received = r.GetProperty("received").GetInt64();
        long interrupts = r.GetProperty("interrupts").GetInt64();
        long waits = r.GetProperty("receiveWaits").GetInt64();
        Assert.True(received > 0, $"nothing received: {r}");
        Assert.Equal("interrupt", r.GetProperty("operationMode").GetString());
        Assert.True(backendFloods || interrupts > 0, $"no receive wait was ended by an interrupt: {r}");

        // Every interrupt counted woke a wait; a wait may also end by its time slice.
        Assert.True(waits >= interrupts, r.ToString());
        if (direction == "loopback")
        {
            Assert.True(r.GetProperty("sent").GetInt64() >= received, r.ToString());
        }
        else
        {
            Assert.Equal(0, r.GetProperty("sent").GetInt64());
        }
    }

    [Theory]
    [Trait("Peer", "Qemu")]
    [InlineData("rx", "mmio", null)]
    [InlineData("loopback", "mmio", null)]
    [InlineData("rx", "pci", "msix")]
    [InlineData("loopback", "pci-legacy", "intx")]
    public void InInterruptModeOnQemuFramesAreReceivedAfterInterrupts(string direction, string transport, string? pciInterrupts)
    {
        QemuRequirement.EnsureAvailable();
        using JsonDocument json = RunBench(direction, "interrupt", ["--transport", transport, .. pciInterrupts is null ? [] : new[] { "--pci-interrupts", pciInterrupts }]);
        AssertReceivedByInterrupts(json.RootElement, direction);
        Assert.NotEqual("none", json.RootElement.GetProperty("interrupt").GetString());
    }

    [Fact]
    [Trait("Peer", "Qemu")]
    public void PollModeStaysTheDefaultAndTakesNoInterrupt()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("bench", "--mode", "loopback", "--seconds", "1", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        JsonElement r = json.RootElement;
        Assert.Equal("poll", r.GetProperty("operationMode").GetString());
        Assert.Equal("none", r.GetProperty("interrupt").GetString());
        Assert.True(r.GetProperty("received").GetInt64() > 0, r.ToString());
        Assert.Equal(0, r.GetProperty("interrupts").GetInt64());
        Assert.Equal(0, r.GetProperty("receiveWaits").GetInt64());
    }

    [Fact]
    [Trait("Peer", "Qemu")]
    public void TheTableSaysWhichOperationModeRan()
    {
        QemuRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run("bench", "--mode", "rx", "--mode", "interrupt", "--seconds", "1");
        Assert.True(result.ExitCode == 0, result.StandardError);
        string row = Assert.Single(result.StandardOutput.Split('\n'), l => l.Contains("operation mode", StringComparison.Ordinal));
        Assert.Contains("interrupt (PLIC line", row, StringComparison.Ordinal);
        Assert.Contains("rx in interrupt mode", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Peer", "Dpdk")]
    public void WithAFeatureMaskOnlyFeaturesInsideItAreNegotiatedAndThePinnedWorkerAllocatesNothing()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");

        // The set DPDK's virtio-user negotiates with testpmd (MRG_RXBUF, INDIRECT_DESC, VERSION_1, IN_ORDER), as
        // bench/compare.py asks for it: no checksum offloads, no EVENT_IDX.
        const ulong mask = 0x9_1000_8000UL;
        using JsonDocument json = RunBench("loopback", "poll", "--vhost-user", testpmd.SocketPath, "--cpu", "0", "--feature-mask", "0x910008000");
        ulong negotiated = Convert.ToUInt64(json.RootElement.GetProperty("negotiatedFeatures").GetString(), 16);
        Assert.Equal(0UL, negotiated & ~mask);
        Assert.Equal(mask, negotiated);
        Assert.True(json.RootElement.GetProperty("received").GetInt64() > 0, json.RootElement.ToString());
        Assert.Equal(0, json.RootElement.GetProperty("allocatedBytes").GetInt64());
    }

    [Theory]
    [Trait("Peer", "Dpdk")]
    [InlineData("rx", "txonly")]
    [InlineData("loopback", "macswap")]
    public void InInterruptModeAgainstTestpmdFramesAreReceivedAndNothingIsAllocatedPerWait(string direction, string forwardMode)
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start(forwardMode);
        using JsonDocument json = RunBench(direction, "interrupt", "--vhost-user", testpmd.SocketPath);
        AssertReceivedByInterrupts(json.RootElement, direction, backendFloods: true);
        Assert.StartsWith("vhost-user call eventfds", json.RootElement.GetProperty("interrupt").GetString(), StringComparison.Ordinal);

        // Nothing allocated per wait: at most the 32 bytes the first interrupt handled on the thread allocates once (seen
        // the same after 1 s and 3 s; poll mode allocates nothing).
        Assert.True(json.RootElement.GetProperty("allocatedBytes").GetInt64() <= 32, json.RootElement.ToString());
    }

    // Adaptive mode against a flooding testpmd: it polls its budget, finds frames, and delivers as poll mode does,
    // allocating nothing per wait.
    [Fact]
    [Trait("Peer", "Dpdk")]
    public void InAdaptiveModeAgainstTestpmdFramesAreReceivedAndNothingIsAllocatedPerWait()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("txonly");
        using JsonDocument json = RunBench("rx", "adaptive", "--vhost-user", testpmd.SocketPath, "--busy-poll-budget", "256");
        Assert.True(json.RootElement.GetProperty("received").GetInt64() > 0, json.RootElement.ToString());
        Assert.True(json.RootElement.GetProperty("allocatedBytes").GetInt64() <= 32, json.RootElement.ToString());
    }

    // Adaptive mode on QEMU, whose frames come back through the qtest machine far slower than any busy-poll budget: the
    // waits spend their budget, arm the notification and are woken by the device's interrupt.
    [Fact]
    [Trait("Peer", "Qemu")]
    public void InAdaptiveModeOnQemuWaitsThatSpendTheirBudgetAreWokenByInterrupts()
    {
        QemuRequirement.EnsureAvailable();
        using JsonDocument json = RunBench("loopback", "adaptive");
        JsonElement r = json.RootElement;
        Assert.True(r.GetProperty("received").GetInt64() > 0, r.ToString());
        Assert.True(r.GetProperty("interrupts").GetInt64() > 0, $"no receive wait was ended by an interrupt: {r}");
    }

    [Fact]
    [Trait("Peer", "Dpdk")]
    public void InInterruptModeTwoQueuePairsEachReceiveTheirOwnFrames()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(2);
        using JsonDocument json = RunBench("loopback", "interrupt", "--vhost-user", testpmd.SocketPath, "--queues", "2");
        AssertReceivedByInterrupts(json.RootElement, "loopback", backendFloods: true);
    }

    [Fact]
    [Trait("Peer", "Qemu10")]
    public void InInterruptModeOnQemu10WithAVectorPerQueueFramesAreReceivedAfterInterrupts()
    {
        string qemu = QemuRequirement.EnsureQemu10Available();
        using JsonDocument json = RunBench("loopback", "interrupt", "--transport", "pci", "--pci-interrupts", "msix-per-queue", "--qemu", qemu);
        AssertReceivedByInterrupts(json.RootElement, "loopback");
    }

    [Fact]
    [Trait("Peer", "Dpdk")]
    public void ASweepInInterruptModeSaysSoForEverySize()
    {
        DpdkRequirement.EnsureAvailable();
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        VnetProcess.Result result = VnetProcess.Run("bench", "--vhost-user", testpmd.SocketPath, "--mode", "loopback", "--mode", "interrupt", "--sizes", "64,1514", "--seconds", "0.5", "--json");
        Assert.True(result.ExitCode == 0, result.StandardError);
        using JsonDocument json = JsonDocument.Parse(result.StandardOutput);
        Assert.Equal("interrupt", json.RootElement.GetProperty("operationMode").GetString());
        JsonElement[] rows = [.. json.RootElement.GetProperty("results").EnumerateArray()];
        Assert.Equal([64, 1514], rows.Select(r => r.GetProperty("size").GetInt32()));
        // Every size ran and carries its interrupt count (how many depends on whether testpmd's flood ever left the
        // queue empty on this machine: see AssertReceivedByInterrupts).
        Assert.All(rows, r => Assert.True(r.GetProperty("mpps").GetDouble() > 0 && r.TryGetProperty("interrupts", out JsonElement count) && count.ValueKind == JsonValueKind.Number, r.ToString()));
    }
}
