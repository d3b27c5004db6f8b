using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using VirtioNet.Cli.Bench;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.VhostUser;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet bench</c>: packets per second through one queue pair with the zero-copy burst API, busy-polling or (with
/// <c>--mode interrupt</c>, for rx and loopback) sleeping until the device interrupts, against a QEMU machine (its UDP
/// socket netdev, with vnet itself as the far end) or a vhost-user backend.
/// </summary>
internal static class BenchCommand
{
    // Two kinds of value in one option: the direction (bench's own --mode since it began) and the operation mode, which
    // every other command takes as --mode interrupt|poll. Each may be given once: --mode rx --mode interrupt.
    private static readonly Option<string[]> Mode = new("--mode")
    {
        Description = "What to measure: tx (send), rx (receive what the peer generates), loopback, or latency (round-trip times of " +
            "stamped frames through a peer that sends them back, e.g. testpmd macswap; default tx); and how the driver " +
            "learns of received frames: poll (busy-polling, the default), interrupt (sleep until the device interrupts) or adaptive " +
            "(poll for a self-tuning budget, then sleep; see --busy-poll-budget); the last two for rx, loopback and latency. " +
            "Give it twice for both, e.g. --mode rx --mode adaptive.",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<int> Size = new("--size") { Description = "Frame length in bytes, Ethernet header included, FCS excluded (60 to 1514).", DefaultValueFactory = _ => 64 };

    private static readonly Option<double> Seconds = new("--seconds") { Description = "How long to measure.", DefaultValueFactory = _ => 5 };

    private static readonly Option<int> Burst = new("--burst") { Description = "Packets per burst call (1 to 512).", DefaultValueFactory = _ => 32 };

    private static readonly Option<string?> VhostUser = new("--vhost-user") { Description = "Drive a vhost-user backend listening on this unix socket (e.g. dpdk-testpmd's net_vhost) instead of a QEMU machine." };

    private static readonly Option<string?> Sizes = new("--sizes") { Description = "Comma-separated frame sizes to sweep (e.g. 64,128,256,512,1024,1514) instead of --size; one run per size." };

    private static readonly Option<string?> Chart = new("--chart") { Description = "With --sizes: write a chart of rate against frame size to this .png or .svg file." };

    private static readonly Option<string> Ring = new("--ring") { Description = "split or packed: the ring layout to negotiate when the device offers both.", DefaultValueFactory = _ => "split" };

    private static readonly Option<int> Queues = new("--queues") { Description = "With --vhost-user: queue pairs to drive, one worker thread each, rates summed (the backend needs as many, e.g. testpmd queues=N --rxq=N --txq=N). Pin with taskset on the whole process.", DefaultValueFactory = _ => 1 };

    private static readonly Option<string?> Cpu = new("--cpu") { Description = "Pin each worker thread to a CPU (sched_setaffinity on its own thread): one number, or a comma-separated list, one per queue pair (pair p on entry p mod the count)." };

    private static readonly Option<string?> FeatureMask = new("--feature-mask") { Description = "Negotiate only features inside this mask (hex, e.g. 0x850008000 for the set DPDK's virtio-user negotiates with testpmd): the rest are disabled, so two drivers can be compared on the same features." };

    private static readonly Option<int> Rate = new("--rate") { Description = "With --mode latency: frames per second, paced one at a time (default 10000); 0 sends as fast as the ring takes them, so the round trip includes a loaded ring's queueing.", DefaultValueFactory = _ => 10000 };

    private static readonly Option<int> BusyPollBudget = new("--busy-poll-budget") { Description = "With --mode adaptive: the most looks at the receive ring before a wait sleeps (1 to 1000000; default the driver's, VirtioNetOptions.BusyPollBudget)." };

    private static readonly Option<bool> VhostUserClient = new("--vhost-user-client") { Description = "Listen on the --vhost-user path and let the backend connect (its client=1 mode)." };

    public static Command Create()
    {
        var command = new Command("bench", "Measure packets per second through the driver's burst API.");
        Mode.AcceptOnlyFromAmong([.. BenchSelection.Values]);
        Ring.AcceptOnlyFromAmong("split", "packed");
        foreach (Option option in new Option[] { Mode, Size, Seconds, Burst, VhostUser, VhostUserClient, Queues, Cpu, FeatureMask, Sizes, Chart, Rate, BusyPollBudget, Ring })
        {
            command.Options.Add(option);
        }

        CommonOptions.AddTo(command, includeOperationMode: false);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static int Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        BenchSelection selection = BenchSelection.Parse(result.GetValue(Mode) ?? []);
        BenchMode mode = selection.Direction;
        if (result.GetResult(CommonOptions.PciInterrupts) is { Implicit: false }
            && selection.RefusePciInterrupts(result.GetValue(VhostUser) is { Length: > 0 }, settings.Transport) is { } refusal)
        {
            throw new CliException(refusal);
        }

        int size = result.GetValue(Size);
        double seconds = result.GetValue(Seconds);
        int burst = result.GetValue(Burst);
        if (size is < 60 or > 1514)
        {
            throw new CliException($"--size must be 60 to 1514; got {size}.");
        }

        if (seconds is <= 0 or > 3600 || double.IsNaN(seconds))
        {
            throw new CliException($"--seconds must be above 0 and at most 3600; got {seconds}.");
        }

        if (burst is < 1 or > 512)
        {
            throw new CliException($"--burst must be 1 to 512; got {burst}.");
        }

        // Checked before anything starts: a bad mask or CPU list is one line, with no QEMU or session left behind.
        VirtioNetOptions netOptions = Options(result, selection);
        int[]? cpus = Cpus(result);
        int queues = result.GetValue(Queues);
        if (queues is < 1 or > 128 || (queues > 1 && result.GetValue(VhostUser) is not { Length: > 0 }) || (queues > 1 && result.GetValue(Sizes) is { Length: > 0 }))
        {
            throw new CliException($"--queues must be 1 to 128, and above 1 only with --vhost-user and without --sizes; got {queues}.");
        }

        int rate = result.GetValue(Rate);
        if (mode == BenchMode.Latency)
        {
            if (rate is < 0 or > 10_000_000)
            {
                throw new CliException($"--rate must be 0 (as fast as the ring takes frames) to 10000000 frames per second; got {rate}.");
            }

            if (size < LatencyRunner.MinimumFrameSize)
            {
                throw new CliException($"--mode latency stamps each frame, which needs --size {LatencyRunner.MinimumFrameSize} or more; got {size}.");
            }

            if (queues > 1 || result.GetValue(Sizes) is { Length: > 0 } || result.GetValue(Chart) is { Length: > 0 })
            {
                throw new CliException("--mode latency measures one queue pair at one frame size: drop --queues, --sizes and --chart.");
            }
        }
        else if (result.GetResult(Rate) is { Implicit: false })
        {
            throw new CliException("--rate paces the frames of --mode latency; the other modes send as fast as they can.");
        }

        if (result.GetValue(Sizes) is { Length: > 0 } sizeList)
        {
            return BenchSweep.Run(result.GetValue(VhostUser), result.GetValue(VhostUserClient), netOptions, settings, mode, sizeList, burst, seconds, result.GetValue(Chart), cancellationToken);
        }

        if (result.GetValue(Chart) is { Length: > 0 })
        {
            throw new CliException("--chart needs --sizes: a chart shows the rate against the frame size.");
        }

        if (result.GetValue(VhostUser) is { Length: > 0 } socketPath)
        {
            return RunOnVhostUser(socketPath, result.GetValue(VhostUserClient), netOptions with { QueuePairs = queues }, settings, mode, size, burst, seconds, rate, cpus, cancellationToken);
        }

        using var peer = new UdpPeer();
        using IQemuBoard board = Boards.Start(settings with { Netdev = peer.Netdev }, cancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, netOptions);
        byte[] frame = new byte[size];
        frame.AsSpan(0, 6).Fill(0xff);
        peer.Start(mode, frame);
        Log.Info($"{net.TransportDescription}: {mode.ToString().ToLowerInvariant()} in {Describe(net)}, {size}-byte frames, bursts of {burst}, {seconds} s");

        return Measure(net, 1, settings, mode, size, burst, seconds, rate, cpus, mode == BenchMode.Tx ? () => peer.Received : null, cancellationToken);
    }

    // Busy-polling, as DPDK does, unless --mode interrupt; the split ring unless --ring packed; with --feature-mask, only
    // the features inside it (and none above bit 63).
    private static VirtioNetOptions Options(ParseResult result, BenchSelection selection)
    {
        ulong disabled = result.GetValue(Ring) == "packed" ? 0 : VirtioNet.Core.VirtioFeatures.RingPacked;
        ulong disabledHigh = 0;
        if (result.GetValue(FeatureMask) is { Length: > 0 } text)
        {
            string hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
            if (!ulong.TryParse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong mask) || hex.Length == 0)
            {
                throw new CliException($"--feature-mask takes a hexadecimal mask such as 0x850008000; got {text}.");
            }

            disabled |= ~mask;
            disabledHigh = ulong.MaxValue;
        }

        int budget = new VirtioNetOptions().BusyPollBudget;
        if (result.GetResult(BusyPollBudget) is { Implicit: false })
        {
            budget = result.GetValue(BusyPollBudget);
            if (selection.Operation != OperationMode.Adaptive || budget is < 1 or > 1_000_000)
            {
                throw new CliException(selection.Operation != OperationMode.Adaptive
                    ? "--busy-poll-budget applies to --mode adaptive."
                    : $"--busy-poll-budget takes 1 to 1000000 looks; got {budget}.");
            }
        }

        return new VirtioNetOptions { OperationMode = selection.Operation, BusyPollBudget = budget, DisabledFeatures = disabled, DisabledFeaturesHigh = disabledHigh };
    }

    // --cpu: the CPUs the workers pin themselves to, or null.
    private static int[]? Cpus(ParseResult result)
    {
        if (result.GetValue(Cpu) is not { Length: > 0 } text)
        {
            return null;
        }

        int count = Environment.ProcessorCount;
        var cpus = new List<int>();
        foreach (string part in text.Split(','))
        {
            if (!int.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int cpu) || cpu >= 1024)
            {
                throw new CliException($"--cpu takes CPU numbers (0 to 1023), comma-separated; got {text}.");
            }

            cpus.Add(cpu);
        }

        return OperatingSystem.IsLinux() ? [.. cpus] : throw new CliException($"--cpu pins threads with sched_setaffinity, which needs Linux ({count} CPUs here).");
    }

    private static int RunOnVhostUser(string socketPath, bool listen, VirtioNetOptions netOptions, MachineSettings settings, BenchMode mode, int size, int burst, double seconds, int rate, int[]? cpus, CancellationToken cancellationToken)
    {
        var options = new VhostUserOptions
        {
            SocketPath = socketPath,
            SocketMode = listen ? VhostUserSocketMode.Listen : VhostUserSocketMode.Connect,
            QueuePairs = netOptions.QueuePairs,
        };
        using VhostUserNetDevice session = VhostUserNetDevice.Open(options, netOptions, cancellationToken: cancellationToken);
        VirtioNetDevice net = session.Device;
        Log.Info($"{net.TransportDescription}: {net.RingLayout.ToString().ToLowerInvariant()} rings, {mode.ToString().ToLowerInvariant()} in {Describe(net)}, {size}-byte frames, bursts of {burst}, {seconds} s, {net.Pairs.Count} queue pair(s)");
        return Measure(net, net.Pairs.Count, settings, mode, size, burst, seconds, rate, cpus, peerCounted: null, cancellationToken);
    }

    // The measured run on a device that is up: the rate bench on the first 'pairs' pairs, or the latency bench on pair 0.
    private static int Measure(VirtioNetDevice net, int pairs, MachineSettings settings, BenchMode mode, int size, int burst, double seconds, int rate, int[]? cpus, Func<long>? peerCounted, CancellationToken cancellationToken)
    {
        if (mode == BenchMode.Latency)
        {
            if (cpus is { Length: > 0 })
            {
                VirtioNet.Platform.ThreadAffinity.PinCurrentThread(cpus[0]);
            }

            LatencyResult latency = LatencyRunner.Run(net, size, burst, rate, TimeSpan.FromSeconds(seconds), cancellationToken);
            LatencyReport.Write(latency, settings.Json, net);
            return latency.Returned > 0 ? 0 : throw new CliException($"no stamped frame came back in {seconds} s: does the peer send frames back (testpmd --forward-mode=macswap)?");
        }

        BenchResult r = BenchRunner.Run(net, mode, size, burst, TimeSpan.FromSeconds(seconds), cancellationToken, pairs, cpus);
        Report(r, settings.Json, net, peerCounted?.Invoke());
        return 0;
    }

    // "poll mode" or "interrupt mode (the line it waits on)".
    private static string Describe(VirtioNetDevice net) =>
        net.OperationMode == OperationMode.Poll ? "poll mode" : $"{net.OperationMode.ToString().ToLowerInvariant()} mode ({net.InterruptDescription})";

    private static void Report(BenchResult r, bool json, VirtioNetDevice net, long? peerCounted)
    {
        string target = net.TransportDescription;
        if (json)
        {
            var o = new JsonObject
            {
                ["target"] = target,
                ["mode"] = r.Mode.ToString().ToLowerInvariant(),
                ["operationMode"] = r.OperationMode.ToString().ToLowerInvariant(),
                ["interrupt"] = net.InterruptDescription,
                ["size"] = r.FrameSize,
                ["burst"] = r.Burst,
                ["seconds"] = Math.Round(r.Seconds, 3),
                ["sent"] = r.Sent,
                ["received"] = r.Received,
                ["peerCounted"] = peerCounted,
                ["mpps"] = Math.Round(r.Mpps, 4),
                ["gbps"] = Math.Round(r.Gbps, 4),
                ["kicks"] = r.Kicks,
                ["interrupts"] = r.Interrupts,
                ["receiveWaits"] = r.ReceiveWaits,
                ["kicksPerPacket"] = Math.Round(r.KicksPerPacket, 5),
                ["interruptsPerPacket"] = Math.Round(r.InterruptsPerPacket, 5),
                ["cpuNsPerPacket"] = Math.Round(r.CpuNanosecondsPerPacket, 1),
                ["allocatedBytes"] = r.AllocatedBytes,
                ["negotiatedFeatures"] = $"0x{net.NegotiatedFeatures.Low:x}",
            };
            Console.Out.WriteLine(o.ToJsonString(Json.Options));
            return;
        }

        // One row per figure: the table stays readable in an 80-column terminal or a log.
        var table = new Table().AddColumns("figure", "value");
        table.AddRow("target", Markup.Escape(target));
        table.AddRow("mode", r.Mode.ToString().ToLowerInvariant());
        table.AddRow("operation mode", Markup.Escape(r.OperationMode == OperationMode.Poll ? "poll" : $"{r.OperationMode.ToString().ToLowerInvariant()} ({net.InterruptDescription})"));
        table.AddRow("frame size", $"{N(r.FrameSize)} B");
        table.AddRow("burst", N(r.Burst));
        table.AddRow("duration", $"{F(r.Seconds, 2)} s");
        table.AddRow("sent / received", $"{N(r.Sent)} / {N(r.Received)}");
        table.AddRow("[bold]rate[/]", $"[bold]{F(r.Mpps, 4)} Mpps[/], {F(r.Gbps, 3)} Gbit/s");
        table.AddRow("kicks per packet", F(r.KicksPerPacket, 4));
        table.AddRow("interrupts (per packet)", $"{N(r.Interrupts)} ({F(r.InterruptsPerPacket, 4)})");
        table.AddRow("receive waits", N(r.ReceiveWaits));
        table.AddRow("CPU time per packet", $"{F(r.CpuNanosecondsPerPacket, 0)} ns");
        table.AddRow("allocated while measuring", $"{N(r.AllocatedBytes)} B");
        table.AddRow("counted by the peer", peerCounted?.ToString(CultureInfo.InvariantCulture) ?? "-");
        AnsiConsole.Write(table);
    }

    private static string N(long v) => v.ToString(CultureInfo.InvariantCulture);

    private static string F(double v, int digits) => v.ToString("F" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}
