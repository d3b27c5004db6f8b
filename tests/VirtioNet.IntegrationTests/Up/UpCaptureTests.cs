using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet capture</c> on a running service (QEMU's virtio-net on its user network, with QEMU's own
/// <c>filter-dump</c> on the netdev; the kernel's ping in the service's namespace): the pcapng file holds the frames
/// byte for byte as QEMU's capture holds them, each with its direction and queue; tcpdump and tshark read it; a file
/// that cannot be written is one line and exit 1, and the instance goes on.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpCaptureTests
{
    private const int Pings = 5;

    [Fact]
    public void CaptureWritesTheFramesByteForByteAsQemusFilterDumpHasThemWithDirectionAndQueueAndTcpdumpReadsIt()
    {
        KernelPeerRequirement.EnsureAvailable();
        QemuRequirement.EnsureAvailable();
        string tcpdump = RequireTool("tcpdump");
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string dump = Path.Combine(Path.GetTempPath(), $"vnet-filter-dump-{Environment.ProcessId}-{suffix}.pcap");
        string file = Path.Combine(Path.GetTempPath(), $"vnet-capture-{Environment.ProcessId}-{suffix}.pcapng");
        try
        {
            using NetworkNamespace near = NetworkNamespace.Create();
            var options = new QemuMachineOptions { ModernMmio = true };
            options = options with { ExtraArguments = ["-object", $"filter-dump,id=fd0,netdev={options.NetdevId},file={dump}"] };
            using RiscvVirtBoard board = RiscvVirtBoard.Start(options, TestContext.Current.CancellationToken);
            using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });

            // Kernel offloads off: the kernel finishes every checksum, so a frame as queued is the frame QEMU gets.
            using InProcessService service = InProcessService.Start(net, $"vp{suffix}", near.Name, dhcp: true, offloads: false);

            // Bad input first: a file that cannot be written.
            VnetProcess.Result refused = VnetProcess.Run("capture", service.Name, "-w", $"/nonexistent-{suffix}/capture.pcapng");
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("cannot write", refused.StandardError, StringComparison.Ordinal);
            Assert.Single(refused.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.True(ControlClient.Ask(ControlServer.DefaultDirectory, service.Name, new() { ["command"] = "status" })["ok"]!.GetValue<bool>());

            using (VnetClientProcess capture = VnetClientProcess.Start(null, "capture", service.Name, "-w", file))
            {
                capture.WaitFor(c => c.Log.Contains("capturing", StringComparison.Ordinal), "the capture to start");
                near.ExecInside($"ping -c {Pings} -i 0.2 -W 5 10.0.2.2");
                var clock = Stopwatch.StartNew();
                while (CaptureFiles.ReadPcapNg(file, growing: true).Count(p => CaptureFiles.IsIcmpEcho(p.Data, 0)) < Pings)
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the capture never held {Pings} echo replies:\n{capture.Log}");
                    Thread.Sleep(100);
                }

                capture.Interrupt();
                Assert.Equal(0, capture.WaitForExit());
                Assert.Contains("frame(s) written", capture.Log, StringComparison.Ordinal);
            }

            List<CaptureFiles.Packet> ours = CaptureFiles.ReadPcapNg(file);
            List<byte[]> qemus = CaptureFiles.ReadPcap(dump);

            // The echo requests went to the device (outbound, queue 0) and the replies came from it (inbound), and each
            // sequence is QEMU's byte for byte.
            List<CaptureFiles.Packet> requests = [.. ours.Where(p => CaptureFiles.IsIcmpEcho(p.Data, 8))];
            List<CaptureFiles.Packet> replies = [.. ours.Where(p => CaptureFiles.IsIcmpEcho(p.Data, 0))];
            Assert.Equal(Pings, requests.Count);
            Assert.Equal(Pings, replies.Count);
            Assert.All(requests, p => Assert.Equal(2u, p.Flags & 3));
            Assert.All(replies, p => Assert.Equal(1u, p.Flags & 3));
            Assert.All(ours, p => Assert.Equal(0, p.Interface));
            Assert.All(ours, p => Assert.Equal(0u, p.Queue));
            Assert.Equal(qemus.Where(f => CaptureFiles.IsIcmpEcho(f, 8)).Select(Convert.ToHexString), requests.Select(p => Convert.ToHexString(p.Data)));
            Assert.Equal(qemus.Where(f => CaptureFiles.IsIcmpEcho(f, 0)).Select(Convert.ToHexString), replies.Select(p => Convert.ToHexString(p.Data)));

            // Every other frame of ours (ARP, the kernel's IPv6 chatter) is one QEMU saw too.
            var seen = qemus.Select(Convert.ToHexString).ToHashSet();
            Assert.All(ours, p => Assert.Contains(Convert.ToHexString(p.Data), seen));

            (int code, string output) = Run(tcpdump, "-n", "-r", file);
            Assert.Equal(0, code);
            Assert.Equal(Pings, output.Split('\n').Count(l => l.Contains("ICMP echo request", StringComparison.Ordinal)));
            (code, output) = Run(RequireTool("tshark"), "-r", file, "-Y", "icmp.type == 0", "-T", "fields", "-e", "frame.interface_id", "-e", "frame.packet_flags_direction");
            Assert.Equal(0, code);
            string[] rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(Pings, rows.Length);
            Assert.All(rows, row => Assert.Equal(["0", "0x00000001"], row.Trim().Split('\t')));
        }
        finally
        {
            File.Delete(dump);
            File.Delete(file);
        }
    }

    [Fact]
    public void ACaptureClientThatDoesNotReadLosesCaptureRecordsCountedWhileEveryFrameStillReachesTheKernel()
    {
        KernelPeerRequirement.EnsureAvailable();
        QemuRequirement.EnsureAvailable();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        using InProcessService service = InProcessService.Start(net, $"vs{suffix}", near.Name, dhcp: true);

        // The frames DHCP took before the pumps started count in rxPackets only.
        JsonObject Stats() => ControlClient.Ask(ControlServer.DefaultDirectory, service.Name, new() { ["command"] = "stats" })["pairs"]![0]!.AsObject();
        JsonObject before = Stats();
        long beforeDhcp = before["rxPackets"]!.GetValue<long>() - before["toKernelFrames"]!.GetValue<long>();

        // A client that subscribes and then reads nothing: its socket buffer and then its queue (4096 records) fill.
        using ControlSubscription stalled = ControlClient.Subscribe(ControlServer.DefaultDirectory, service.Name, new() { ["command"] = "capture" });
        near.ExecInside("ping -q -c 4000 -i 0.002 -W 5 10.0.2.2");

        // Now read: somewhere in what waited, the lines say records were lost.
        long dropped = 0;
        for (int i = 0; i < 10_000 && dropped == 0; i++)
        {
            JsonObject? line = stalled.Read(TestContext.Current.CancellationToken);
            Assert.NotNull(line);
            dropped = line["dropped"]!.GetValue<long>();
        }

        Assert.True(dropped > 0, "a client that read nothing for 8,000 frames lost no capture record");

        // The traffic lost nothing: every frame the driver received went to the kernel, and the service dropped none.
        // (A frame the pump holds between the two counts is waited out.)
        JsonObject stats = Stats();
        var clock = Stopwatch.StartNew();
        while (stats["rxPackets"]!.GetValue<long>() - beforeDhcp != stats["toKernelFrames"]!.GetValue<long>() && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(100);
            stats = Stats();
        }

        Assert.Equal(stats["rxPackets"]!.GetValue<long>() - beforeDhcp, stats["toKernelFrames"]!.GetValue<long>());
        Assert.Equal(0, stats["rxDrops"]!.GetValue<long>());
        Assert.All(stats["serviceDrops"]!.AsObject(), d => Assert.Equal(0, d.Value!.GetValue<long>()));
        Assert.True(stats["rxPackets"]!.GetValue<long>() >= 4000, $"only {stats["rxPackets"]} frames received");
    }

    // A tool the test needs: its path, or a skip on a developer's machine (a failure under CI).
    private static string RequireTool(string name)
    {
        string? path = Environment.GetEnvironmentVariable("PATH")?.Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
        if (path is not null)
        {
            return path;
        }

        Assert.False(Environment.GetEnvironmentVariable("CI") == "true", $"{name} is missing (scripts/install-deps installs it)");
        Assert.Skip($"{name} is not installed");
        return name;
    }

    // Exit code and standard output (tshark warns on stderr when run as root).
    private static (int Code, string Output) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> errors = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)), $"{program} did not finish");
        Assert.True(process.ExitCode == 0, $"{program} failed: {errors.Result}");
        return (process.ExitCode, output.Result);
    }
}
