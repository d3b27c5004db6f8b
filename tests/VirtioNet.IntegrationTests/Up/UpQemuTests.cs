using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using VirtioNet.IntegrationTests.Cli;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet up</c> on QEMU: the kernel's own TCP through a TAP interface served by VirtioNet, through QEMU's virtio-net,
/// to QEMU's user network (a server on the host's loopback at 10.0.2.2) or to QEMU's own <c>-netdev tap</c> in a second
/// namespace; and the bad input it refuses, each with one line and nothing left behind.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class UpQemuTests
{
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(300);

    [Fact]
    public void TheKernelDownloadsFromAServerOnTheHostsLoopbackThroughQemusUserNetworkWithItsHashIntact()
    {
        KernelPeerRequirement.EnsureAvailable();
        byte[] blob = RandomNumberGenerator.GetBytes(8 << 20);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var serving = new Thread(() => ServeOnce(listener, blob)) { IsBackground = true };
        serving.Start();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        string netns = $"vnet-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-up{suffix}";

        VnetProcess.Result result = VnetProcess.Run("up", "--netns", netns, "--tap", $"vu{suffix}", "--dhcp",
            "--exec", $"curl -sS --max-time 90 http://10.0.2.2:{port.ToString(CultureInfo.InvariantCulture)}/blob | sha256sum");

        Assert.True(result.ExitCode == 0, $"vnet up --exec exited with {result.ExitCode}:\n{result.StandardError}");
        Assert.StartsWith(Convert.ToHexStringLower(SHA256.HashData(blob)), result.StandardOutput.Trim(), StringComparison.Ordinal);
        Assert.True(serving.Join(TimeSpan.FromSeconds(30)), "The server never finished sending.");
        Assert.Contains("DHCP: 10.0.2.15/24", result.StandardError, StringComparison.Ordinal);
        Assert.False(File.Exists($"/run/netns/{netns}"), "vnet up left the namespace it created.");
    }

    [Theory]
    [InlineData("riscv64-virt", "mmio")]
    [InlineData("x86_64-q35", "pci")]
    public void TheKernelsTcpCarries64MiBThroughVirtioNetIntoQemusTapBackendInASecondNamespace(string machine, string transport)
    {
        KernelPeerRequirement.EnsureAvailable();
        using NetworkNamespace far = NetworkNamespace.Create();
        using NetworkNamespace near = NetworkNamespace.Create();
        string tap = $"vu{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        using UpProcess up = UpProcess.Start("--netns", near.Name, "--tap", tap, "--netdev", $"tap={far.TapName}", "--machine", machine, "--transport", transport);

        // QEMU holds its TAP open; moved into the far namespace it is the kernel there, at 10.77.0.1.
        far.MoveTapInUnaddressed(1500);
        far.IpInside($"addr add {NetworkNamespace.KernelAddress}/24 dev {far.TapName}");
        near.IpInside($"addr add {NetworkNamespace.DriverAddress}/24 dev {tap}");

        (string sent, string received) = KernelTcpTransfer.Run(far, NetworkNamespace.KernelAddress, near, 64 << 20, TransferTimeout);

        Assert.Equal(sent, received);
        Assert.Equal(0, up.Stop());
        Assert.Contains("stopped; TAP removed", up.Log, StringComparison.Ordinal);
        Assert.DoesNotContain(tap, near.IpInside("link show"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--tap abcdefghijklmnop", "must be 1 to 15 bytes")]
    [InlineData("--tap lo", "already taken")]
    [InlineData("--netns vnet-no-such-namespace", "does not exist")]
    [InlineData("--netdev bogus", "--netdev must be")]
    [InlineData("--vhost-user /nonexistent/vnet-up.sock", "No vhost-user backend")]
    [InlineData("--qemu /nonexistent/qemu-system-riscv64", "QEMU not found")]
    public void BadInputIsRefusedWithOneLineAndANonZeroExit(string arguments, string expected)
    {
        KernelPeerRequirement.EnsureAvailable();
        VnetProcess.Result result = VnetProcess.Run(["up", .. arguments.Split(' ')]);

        Assert.NotEqual(0, result.ExitCode);
        string[] errors = result.StandardError.Split('\n').Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal)).ToArray();
        Assert.Single(errors);
        Assert.Contains(expected, errors[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public void ADeviceThatNeverShowsLinkIsRefusedWithOneLineANonZeroExitAndNothingLeftBehind()
    {
        KernelPeerRequirement.EnsureAvailable();
        using DetachedMachine machine = DetachedMachine.Start();
        machine.SetLink(false);
        using NetworkNamespace near = NetworkNamespace.Create();
        string tap = $"vl{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";

        VnetProcess.Result result = VnetProcess.Run("up", "--machine-name", machine.Name, "--netns", near.Name, "--tap", tap, "--link-timeout", "2");

        Assert.NotEqual(0, result.ExitCode);
        string[] errors = result.StandardError.Split('\n').Where(l => l.StartsWith("vnet: error:", StringComparison.Ordinal)).ToArray();
        Assert.True(errors.Length == 1, result.StandardError);
        Assert.Contains("never showed link up within 2 s", errors[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.StandardError, StringComparison.Ordinal);

        // Nothing left: no TAP, no control socket, no TAP record; the machine is free for the next driver.
        Assert.DoesNotContain(tap, near.IpInside("link show"), StringComparison.Ordinal);
        Assert.False(File.Exists(ControlServer.PathFor(ControlServer.DefaultDirectory, tap)), "vnet up left its control socket.");
        Assert.Empty(Directory.EnumerateFileSystemEntries(ControlServer.DefaultDirectory, $"{tap}*"));
        machine.SetLink(true);
    }

    // A minimal HTTP/1.0 server: one request, the blob, close.
    private static void ServeOnce(TcpListener listener, byte[] blob)
    {
        using Socket socket = listener.AcceptSocket();
        socket.ReceiveTimeout = 60_000;
        byte[] request = new byte[4096];
        int length = 0;
        while (length < request.Length && !Encoding.ASCII.GetString(request, 0, length).Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            int n = socket.Receive(request, length, request.Length - length, SocketFlags.None);
            if (n == 0)
            {
                return;
            }

            length += n;
        }

        socket.Send(Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {blob.Length}\r\n\r\n"));
        socket.Send(blob);
        socket.Shutdown(SocketShutdown.Send);
    }
}
