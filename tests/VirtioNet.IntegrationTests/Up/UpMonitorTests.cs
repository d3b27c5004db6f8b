using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using VirtioNet.IntegrationTests.Net;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet monitor</c> on a running service (QEMU's virtio-net on a UDP socket backend the test plays, the kernel on the
/// service's TAP): two clients see QMP <c>set_link off</c> and <c>on</c> and a recovery from a fault QEMU itself
/// flagged; a client killed mid-stream, malformed requests and a user the socket's mode shuts out disturb nothing.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpMonitorTests
{
    [Fact]
    public void TwoMonitorsSeeSetLinkOffAndOnAndARecoveryWhileAKilledClientMalformedRequestsAndAnotherUserDisturbNothing()
    {
        KernelPeerRequirement.EnsureAvailable();
        QemuRequirement.EnsureAvailable();
        using var wire = new UdpWire();
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = wire.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt, AutoRecover = true });
        string tap = $"vm{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        using InProcessService service = InProcessService.Start(net, tap, near.Name);
        string path = ControlServer.PathFor(ControlServer.DefaultDirectory, service.Name);

        using var json = VnetClientProcess.Start(null, "monitor", service.Name, "--json");
        using var text = VnetClientProcess.Start(null, "monitor", service.Name);
        using var doomed = VnetClientProcess.Start(null, "monitor", service.Name, "--json");
        foreach (VnetClientProcess client in new[] { json, text, doomed })
        {
            client.WaitFor(c => c.Log.Contains("watching", StringComparison.Ordinal), "the monitor to subscribe");
        }

        // Killed mid-stream: its connection just ends.
        doomed.Kill();

        // Malformed requests beside the streams: an error reply each, and the connection goes on.
        using (var raw = new RawClient(path))
        {
            Assert.StartsWith("not a request", raw.Error("{\"command\":\"monitor\""), StringComparison.Ordinal);
            Assert.Contains("\"command\"", raw.Error("{\"command\":42}"), StringComparison.Ordinal);
            Assert.Contains("queue pair index", raw.Error("{\"command\":\"capture\",\"queue\":99}"), StringComparison.Ordinal);
            Assert.Contains("\"rx\" or \"tx\"", raw.Error("{\"command\":\"capture\",\"direction\":\"sideways\"}"), StringComparison.Ordinal);
        }

        // Another user: the socket is root's only.
        using (var stranger = VnetClientProcess.Start("nobody", "monitor", service.Name))
        {
            Assert.Equal(1, stranger.WaitForExit());
            Assert.Contains("permission denied", stranger.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stranger.Log, StringComparison.Ordinal);
            Assert.Empty(stranger.Lines);
        }

        board.SetLink(false);
        json.WaitFor(c => Events(c).Contains("link-down"), "link-down in JSON");
        text.WaitFor(c => c.Lines.Any(l => l.EndsWith($"{service.Name}: link-down", StringComparison.Ordinal)), "link-down as text");
        board.SetLink(true);
        json.WaitFor(c => Events(c).Contains("link-up"), "link-up in JSON");
        text.WaitFor(c => c.Lines.Any(l => l.EndsWith($"{service.Name}: link-up", StringComparison.Ordinal)), "link-up as text");

        // A fault QEMU flags (DEVICE_NEEDS_RESET after a corrupted receive ring), which the service's device recovers from.
        RecoveryTests.CorruptReceiveDescriptors(board, net);
        byte[] frame = new byte[80];
        net.MacAddress.Span.CopyTo(frame);
        frame[6] = 0x02;
        frame[12] = 0x88;
        frame[13] = 0xb5;
        wire.Inject(frame);
        json.WaitFor(c => Events(c).Contains("recovered"), "the recovery in JSON");
        text.WaitFor(c => c.Lines.Any(l => l.Contains($"{service.Name}: recovered", StringComparison.Ordinal)), "the recovery as text");
        Assert.Equal(1, net.Recoveries);
        Assert.Contains("queue-broken", Events(json));
        Assert.Contains(json.Lines, l => l.Contains("DEVICE_NEEDS_RESET", StringComparison.Ordinal));

        // A recovery asked for on the control socket is seen as well.
        System.Text.Json.Nodes.JsonObject recover = ControlClient.Ask(ControlServer.DefaultDirectory, service.Name, new() { ["command"] = "recover" });
        Assert.True(recover["ok"]!.GetValue<bool>(), recover.ToJsonString());
        Assert.Equal(2, recover["recoveries"]!.GetValue<long>());
        json.WaitFor(c => Events(c).Count(e => e == "recovered") == 2, "the requested recovery in JSON");

        // The service still answers, and its monitors stop on Ctrl-C as a user stops them.
        Assert.True(ControlClient.Ask(ControlServer.DefaultDirectory, service.Name, new() { ["command"] = "status" })["ok"]!.GetValue<bool>());
        json.Interrupt();
        text.Interrupt();
        Assert.Equal(0, json.WaitForExit());
        Assert.Equal(0, text.WaitForExit());
    }

    // The "event" of every JSON line (each line must be a JSON object with a time).
    private static List<string> Events(VnetClientProcess client) => [.. client.Lines.Select(line =>
    {
        using JsonDocument e = JsonDocument.Parse(line);
        Assert.True(e.RootElement.TryGetProperty("time", out _), line);
        return e.RootElement.GetProperty("event").GetString()!;
    })];

    // A client that sends one line and reads the one reply.
    private sealed class RawClient : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly StreamReader _reader;

        public RawClient(string path)
        {
            _socket.Connect(new UnixDomainSocketEndPoint(path));
            _socket.ReceiveTimeout = 30_000;
            _reader = new StreamReader(new NetworkStream(_socket, ownsSocket: false), new UTF8Encoding(false));
        }

        // The error of a request that must be refused.
        public string Error(string request)
        {
            _socket.Send(Encoding.UTF8.GetBytes(request + "\n"));
            using JsonDocument reply = JsonDocument.Parse(_reader.ReadLine() ?? throw new InvalidOperationException("The service closed the connection."));
            Assert.False(reply.RootElement.GetProperty("ok").GetBoolean());
            return reply.RootElement.GetProperty("error").GetString()!;
        }

        public void Dispose()
        {
            _reader.Dispose();
            _socket.Dispose();
        }
    }
}
