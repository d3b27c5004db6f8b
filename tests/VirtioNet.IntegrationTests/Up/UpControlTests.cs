using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// The control socket of a running service (QEMU's virtio-net on a TAP backend, the kernel on the service's TAP): a
/// stale socket left by a dead instance is replaced, the socket is the owner's only, two clients are answered at once,
/// garbage gets an error reply, a client that vanishes mid-request is dropped, and the service goes on answering.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpControlTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void TheControlSocketAnswersTwoClientsSurvivesGarbageAndVanishedClientsAndStaleSocketsAreRemovedNotTrusted()
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = far.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt });
        far.MoveTapInUnaddressed(1500);
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string tap = $"vc{suffix}";
        string name = $"control-{suffix}";
        string directory = Path.Combine(Path.GetTempPath(), $"vnet-control-{Environment.ProcessId}-{suffix}");
        string path = ControlServer.PathFor(directory, name);
        Directory.CreateDirectory(directory);
        try
        {
            // A socket file nobody listens on any more: what a killed instance leaves.
            LeaveStaleSocket(path);

            Assert.False(ControlServer.IsAnswered(path));
            var log = new ConcurrentQueue<string>();
            using var stop = new CancellationTokenSource();
            int exitCode = -1;
            Exception? failure = null;
            var options = new TapServiceOptions { TapName = tap, Namespace = near.Name, InstanceName = name, ControlDirectory = directory };
            var service = new Thread(() =>
            {
                try
                {
                    exitCode = TapService.Run(new DeviceLink(net), options, log.Enqueue, stop.Token);
                }
                catch (Exception e)
                {
                    failure = e;
                }
            })
            { IsBackground = true };
            service.Start();
            try
            {
                Eventually(() => log.Any(l => l.Contains(" carries traffic", StringComparison.Ordinal)) || failure is not null, "the service to start", log);
                Assert.Null(failure);
                Assert.Contains(log, l => l.Contains("removed the stale control socket", StringComparison.Ordinal));
                if (OperatingSystem.IsLinux())
                {
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
                }

                Assert.Equal([name], ControlClient.Running(directory));
                Assert.Equal(tap, ControlClient.Ask(directory, name, new() { ["command"] = "status" })["tap"]?.GetValue<string>());

                // The name is taken while the instance runs.
                var taken = Assert.Throws<ServiceException>(() => ControlServer.Start(directory, name, (_, _) => new(), _ => { }));
                Assert.Contains("already running", taken.Message, StringComparison.Ordinal);

                using var first = new Client(path);
                using var second = new Client(path);
                JsonElement status = first.Ask("{\"command\":\"status\"}");
                Assert.True(status.GetProperty("ok").GetBoolean());
                Assert.Equal(name, status.GetProperty("name").GetString());
                Assert.Equal(tap, status.GetProperty("tap").GetString());
                Assert.Equal(near.Name, status.GetProperty("namespace").GetString());
                Assert.Equal(1, status.GetProperty("pairs").GetInt32());
                Assert.Equal("up", status.GetProperty("link").GetString());
                JsonElement stats = second.Ask("{\"command\":\"stats\"}");
                Assert.True(stats.GetProperty("ok").GetBoolean());
                Assert.Equal(1, stats.GetProperty("pairs").GetArrayLength());

                JsonElement garbage = first.Ask("this is not JSON");
                Assert.False(garbage.GetProperty("ok").GetBoolean());
                Assert.StartsWith("not a request", garbage.GetProperty("error").GetString(), StringComparison.Ordinal);
                JsonElement unknown = second.Ask("{\"command\":\"reboot-the-world\"}");
                Assert.False(unknown.GetProperty("ok").GetBoolean());
                Assert.Contains("unknown command", unknown.GetProperty("error").GetString(), StringComparison.Ordinal);

                // A client that goes away in the middle of a request.
                using (var vanishing = new Client(path))
                {
                    vanishing.SendPartial("{\"command\":\"sta");
                }

                Assert.True(first.Ask("{\"command\":\"status\"}").GetProperty("ok").GetBoolean());
                Assert.True(second.Ask("{\"command\":\"status\"}").GetProperty("ok").GetBoolean());
            }
            finally
            {
                stop.Cancel();
                Assert.True(service.Join(Patience), "The service did not stop.");
            }

            Assert.Null(failure);
            Assert.Equal(0, exitCode);
            Assert.False(File.Exists(path), "The control socket was left behind.");

            // A client finds no instance behind a stale socket, and removes it.
            LeaveStaleSocket(path);

            var stale = Assert.Throws<ServiceException>(() => ControlClient.Ask(directory, name, new() { ["command"] = "status" }));
            Assert.Contains("stale", stale.Message, StringComparison.Ordinal);
            Assert.False(File.Exists(path), "The stale socket was trusted.");
            Assert.Throws<ServiceException>(() => ControlClient.Ask(directory, name, new() { ["command"] = "status" }));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // .NET removes the file of a socket it bound when it closes it; a killed process does not. Binding under another
    // name and renaming the file leaves what a killed instance leaves: a socket file nobody listens on.
    internal static void LeaveStaleSocket(string path)
    {
        string bound = path + ".bound";
        using (var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            dead.Bind(new UnixDomainSocketEndPoint(bound));
            File.Move(bound, path);
        }

        Assert.True(File.Exists(path));
    }

    private static void Eventually(Func<bool> condition, string what, ConcurrentQueue<string> log)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what}.\n{string.Join('\n', log)}");
            Thread.Sleep(100);
        }
    }

    // One line-oriented client of the control socket, with a bounded wait for each reply.
    private sealed class Client : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly StreamReader _reader;

        public Client(string path)
        {
            _socket.Connect(new UnixDomainSocketEndPoint(path));
            _socket.ReceiveTimeout = (int)Patience.TotalMilliseconds;
            _reader = new StreamReader(new NetworkStream(_socket, ownsSocket: false), new UTF8Encoding(false));
        }

        public JsonElement Ask(string request)
        {
            _socket.Send(Encoding.UTF8.GetBytes(request + "\n"));
            string line = _reader.ReadLine() ?? throw new InvalidOperationException("The service closed the connection.");
            using JsonDocument reply = JsonDocument.Parse(line);
            return reply.RootElement.Clone();
        }

        public void SendPartial(string text) => _socket.Send(Encoding.UTF8.GetBytes(text));

        public void Dispose()
        {
            _reader.Dispose();
            _socket.Dispose();
        }
    }
}
