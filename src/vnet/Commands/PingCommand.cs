using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using VirtioNet.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Qemu;

namespace VirtioNet.Cli.Commands;

/// <summary><c>vnet ping ADDRESS</c>: DHCP from QEMU's user network, ARP, then ICMP echo, printed the way ping prints it.</summary>
internal static class PingCommand
{
    private static readonly Argument<string> Target = new("address") { Description = "The IPv4 address to ping, e.g. 10.0.2.2 (QEMU's user-network gateway)." };

    private static readonly Option<int> Count = new("--count", "-c") { Description = "Echo requests to send.", DefaultValueFactory = _ => 4 };

    private static readonly Option<double> Interval = new("--interval", "-i") { Description = "Seconds between requests.", DefaultValueFactory = _ => 1.0 };

    private static readonly Option<double> Timeout = new("--timeout", "-W") { Description = "Seconds to wait for each reply.", DefaultValueFactory = _ => 2.0 };

    public static Command Create()
    {
        var command = new Command("ping", "Get an address by DHCP, then send ICMP echo requests through the virtio-net driver.");
        command.Arguments.Add(Target);
        command.Options.Add(Count);
        command.Options.Add(Interval);
        command.Options.Add(Timeout);
        CommonOptions.AddTo(command);
        CommandRunner.SetAction(command, Execute);
        return command;
    }

    private static async Task<int> Execute(MachineSettings settings, ParseResult result, CancellationToken cancellationToken)
    {
        string text = result.GetValue(Target) ?? string.Empty;
        if (!IPAddress.TryParse(text, out IPAddress? target) || target.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            throw new CliException($"'{text}' is not an IPv4 address.");
        }

        int count = result.GetValue(Count);
        double interval = result.GetValue(Interval);
        double timeout = result.GetValue(Timeout);
        if (count is < 1 or > 1_000_000)
        {
            throw new CliException($"--count must be 1 to 1000000; got {count}.");
        }

        if (interval is < 0 or > 3600 || double.IsNaN(interval))
        {
            throw new CliException($"--interval must be 0 to 3600 seconds; got {interval}.");
        }

        if (timeout is <= 0 or > 3600 || double.IsNaN(timeout))
        {
            throw new CliException($"--timeout must be above 0 and at most 3600 seconds; got {timeout}.");
        }

        using IQemuBoard board = Boards.Start(settings, cancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(settings.BaseAddress, new VirtioNetOptions { OperationMode = settings.Mode });
        net.LinkStateChanged += (_, e) => Log.Info($"link {(e.IsUp ? "up" : "down")}");
        Log.Info($"{net.TransportDescription}: MAC {Json.FormatMac(net.MacAddress.Span)}, link {(net.IsLinkUp ? "up" : "down")}, " +
            $"{net.ReceiveMode.ToString().ToLowerInvariant()} receive buffers, {net.RingLayout.ToString().ToLowerInvariant()} rings, {net.OperationMode.ToString().ToLowerInvariant()} mode ({net.InterruptDescription})");

        // The client's waits are the pair's asynchronous ones: no thread sleeps on the device while a reply is awaited.
        var session = new DiagnosticClient(new VirtioNetFramePort(net));
        DhcpLease lease = await session.AcquireLeaseAsync(cancellationToken);
        Log.Info($"DHCP: {lease.Address} from {lease.ServerIdentifier}, router {lease.Router?.ToString() ?? "none"}");

        Pinger pinger = session.CreatePinger(target, new PingOptions
        {
            Interval = TimeSpan.FromSeconds(interval),
            Timeout = TimeSpan.FromSeconds(timeout),
        });
        var rtts = new JsonArray();
        if (!settings.Json)
        {
            Console.Out.WriteLine(pinger.Banner);
        }

        await foreach (PingReply reply in pinger.RunAsync(count, cancellationToken))
        {
            if (reply.Status == PingStatus.Success)
            {
                rtts.Add((JsonNode)JsonValue.Create(Math.Round(reply.RoundTripTime.TotalMilliseconds, 3)));
            }

            if (!settings.Json)
            {
                Console.Out.WriteLine(reply.ToString());
            }
        }

        PingStatistics stats = pinger.Statistics;
        if (settings.Json)
        {
            var json = new JsonObject
            {
                ["target"] = target.ToString(),
                ["address"] = lease.Address.ToString(),
                ["transport"] = net.TransportDescription,
                ["mode"] = net.OperationMode.ToString().ToLowerInvariant(),
                ["receiveMode"] = net.ReceiveMode.ToString().ToLowerInvariant(),
                ["ringLayout"] = net.RingLayout.ToString().ToLowerInvariant(),
                ["interrupt"] = net.InterruptDescription,
                ["transmitted"] = stats.Transmitted,
                ["received"] = stats.Received,
                ["rttMs"] = rtts,
                ["negotiatedFeatures"] = FeatureListing.ToJson(net.NegotiatedFeatures),
            };
            Console.Out.WriteLine(json.ToJsonString(Json.Options));
        }
        else
        {
            Console.Out.WriteLine();
            Console.Out.WriteLine(stats.ToString());
        }

        // In interrupt mode a frame counts as woken by an interrupt only when the driver had to sleep for it: QEMU's
        // user network usually answers while the notification that sent the request is still being handled, so the
        // reply is in the used ring before the driver looks, and no interrupt is needed (or counted).
        Log.Info(string.Create(CultureInfo.InvariantCulture,
            $"receiveq1: {net.Pairs[0].ReceiveStatistics.Packets} packets, {net.Pairs[0].ReceiveStatistics.Interrupts} woken by an interrupt (the others were already there when looked for), {net.Pairs[0].ReceiveStatistics.Errors} errors; " +
            $"transmitq1: {net.Pairs[0].TransmitStatistics.Packets} packets, {net.Pairs[0].TransmitStatistics.Notifications} notifications"));

        // Like ping: success only when at least one reply came back.
        return stats.Received > 0 ? 0 : CommandRunner.Failure;
    }
}
