using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// TCP between the test TCP endpoint above the driver and a kernel socket in a network namespace of the test's own,
/// through QEMU's virtio-net with a TAP backend (<c>vnet_hdr=on</c>, the only backend that offers offloads): several
/// megabytes each way, hash compared, with checksum and segmentation offloads on, with the device's checksum but
/// software segmentation, and with every offload off (software checksums and segmentation), at MTU 1500 and 9000.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapTcpTests
{
    private const int TransferBytes = 4 << 20;
    private const ushort KernelPort = 5001;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(120);

    private const ulong DeviceSegmentation = VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6;
    private const ulong GuestLargeReceive = VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6;

    /// <summary>How the driver is set up: every offload, the device's checksums with software segmentation, or none.</summary>
    public enum OffloadMode
    {
        All,
        ChecksumOnly,
        None,
    }

    [Theory]
    [InlineData(OffloadMode.All, 1500)]
    [InlineData(OffloadMode.ChecksumOnly, 1500)]
    [InlineData(OffloadMode.None, 1500)]
    [InlineData(OffloadMode.None, 9000)]
    [InlineData(OffloadMode.All, 9000)]
    public async Task SeveralMegabytesFromTheDriverReachAKernelSocketIntact(OffloadMode mode, int mtu)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns, mtu);
        using VirtioNetDevice net = Open(board, ns, mode, mtu);

        using var listening = new ManualResetEventSlim();
        Task<(long Count, byte[] Hash)> kernel = ns.Run(() =>
        {
            using Socket client = AcceptOne(listening);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[256 * 1024];
            long count = 0;
            int n;
            while ((n = client.Receive(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                count += n;
            }

            return (count, hash.GetHashAndReset());
        });
        Assert.True(listening.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken), "the kernel side never listened");

        TestTcpEndpoint endpoint = Endpoint(net, mtu, mode);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        endpoint.SendAll(data, TransferTimeout);
        (long count, byte[] hash) = await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken);

        Assert.Equal(data.Length, count);
        Assert.Equal(SHA256.HashData(data), hash);

        // How the bytes went: one GSO packet per large segment with TSO, MSS-sized frames otherwise.
        long packets = net.TransmitStatistics.Packets;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{mode}, MTU {mtu}: {packets} packets, {net.TransmitStatistics.Bytes} bytes sent, {endpoint.Retransmissions} retransmissions; negotiated {string.Join(' ', VirtioNetFeatureNames.Describe(net.NegotiatedFeatures & VirtioNetOptions.OffloadFeatures))}");
        int mss = Mss(mtu);
        if (mode == OffloadMode.All)
        {
            // Large segments are cut only by the window: at least three times fewer packets than MSS-sized frames.
            Assert.True(packets * 3 < data.Length / mss, $"{packets} packets sent for {data.Length} bytes: the device did not segment");
        }
        else
        {
            Assert.True(packets >= data.Length / mss, $"{packets} packets sent for {data.Length} bytes with MSS {mss}: not segmented in software");
            Assert.True(net.TransmitStatistics.Bytes / packets > (mtu > 1500 ? 4000 : 700), "the frames were not full-size");
        }
    }

    [Theory]
    [InlineData(OffloadMode.All, 1500)]
    [InlineData(OffloadMode.ChecksumOnly, 1500)]
    [InlineData(OffloadMode.None, 1500)]
    [InlineData(OffloadMode.None, 9000)]
    [InlineData(OffloadMode.All, 9000)]
    public async Task SeveralMegabytesFromAKernelSocketReachTheDriverIntact(OffloadMode mode, int mtu)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns, mtu);
        using VirtioNetDevice net = Open(board, ns, mode, mtu);

        using var listening = new ManualResetEventSlim();
        Task<int> kernel = ns.Run(() =>
        {
            using Socket client = AcceptOne(listening);
            client.Send(data);
            client.Shutdown(SocketShutdown.Send);

            // Wait for the endpoint's FIN, so the data is acknowledged before the socket goes.
            return client.Receive(new byte[16]);
        });
        Assert.True(listening.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken), "the kernel side never listened");

        TestTcpEndpoint endpoint = Endpoint(net, mtu, mode);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        byte[] received = endpoint.ReceiveAll(TransferTimeout);
        Assert.Equal(0, await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken));

        Assert.Equal(data.Length, received.Length);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.Equal(0, endpoint.BadChecksums);

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{mode}, MTU {mtu}: {endpoint.FramesReceived} frames received, {endpoint.GsoFramesReceived} GSO, {endpoint.FramesLargerThanMtu} above the MTU, longest {endpoint.LongestFrameReceived}; checksums {string.Join(", ", endpoint.ChecksumStates.Select(p => $"{p.Key} {p.Value}"))}; errors {net.ReceiveStatistics.Errors}");
        int largestFrame = mtu + EthernetFrame.HeaderLength;
        if (mode == OffloadMode.All)
        {
            // GUEST_TSO4: the kernel hands the TAP segments larger than the MTU, and the driver delivers them whole.
            Assert.True(endpoint.GsoFramesReceived > 0, "no GSO frame arrived");
            Assert.True(endpoint.FramesLargerThanMtu > 0, $"no frame above {largestFrame} bytes arrived (longest {endpoint.LongestFrameReceived})");
            Assert.True(endpoint.ChecksumStates.GetValueOrDefault(ReceivedChecksumState.Completed) > 0, "no partial checksum was completed by the driver");
        }
        else
        {
            Assert.Equal(0, endpoint.GsoFramesReceived);
            Assert.True(endpoint.LongestFrameReceived <= largestFrame, $"a {endpoint.LongestFrameReceived}-byte frame arrived without GSO over MTU {mtu}");
        }

        if (mtu > 1500)
        {
            Assert.True(endpoint.LongestFrameReceived > 1514, $"no jumbo frame arrived (longest {endpoint.LongestFrameReceived})");
        }
    }

    private static NetworkNamespace NetworkNamespaceForTest()
    {
        KernelPeerRequirement.EnsureAvailable();
        return NetworkNamespace.Create();
    }

    private static RiscvVirtBoard StartBoard(NetworkNamespace ns, int mtu) =>
        RiscvVirtBoard.Start(
            new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev, NetDeviceProperties = mtu == 1500 ? string.Empty : $"host_mtu={mtu}" },
            TestContext.Current.CancellationToken);

    private static VirtioNetDevice Open(RiscvVirtBoard board, NetworkNamespace ns, OffloadMode mode, int mtu)
    {
        var options = new VirtioNetOptions
        {
            Mode = OperationMode.Poll,
            Offloads = mode != OffloadMode.None,
            DisabledFeatures = mode == OffloadMode.ChecksumOnly ? DeviceSegmentation | GuestLargeReceive : 0,
        };
        VirtioNetDevice net = board.OpenNetDevice(null, options);
        try
        {
            const ulong checksums = VirtioNetFeatures.Csum | VirtioNetFeatures.GuestCsum;
            ulong expected = mode switch
            {
                OffloadMode.All => checksums | DeviceSegmentation | GuestLargeReceive,
                OffloadMode.ChecksumOnly => checksums,
                _ => 0,
            };
            Assert.Equal(expected, net.NegotiatedFeatures & VirtioNetOptions.OffloadFeatures & ~(VirtioNetFeatures.HostEcn | VirtioNetFeatures.GuestEcn));
            Assert.Equal(mtu, net.Mtu);
            ns.MoveTapIn(mtu, net.MacAddress.Span);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    private static int Mss(int mtu) => mtu - 40;

    private static TestTcpEndpoint Endpoint(VirtioNetDevice net, int mtu, OffloadMode mode)
    {
        int mss = Mss(mtu);

        // Hand the driver large segments in every mode: the driver, not the endpoint, decides how they are cut.
        int largest = mss * Math.Max(1, 60000 / mss);
        _ = mode;
        return new TestTcpEndpoint(
            net, NetworkNamespace.KernelMac, IPAddress.Parse(NetworkNamespace.DriverAddress), IPAddress.Parse(NetworkNamespace.KernelAddress),
            (ushort)Random.Shared.Next(32768, 60000), KernelPort, mss, largest);
    }

    // On the namespace's thread: listen on the kernel address, say so, and take one connection.
    private static Socket AcceptOne(ManualResetEventSlim listening)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Parse(NetworkNamespace.KernelAddress), KernelPort));
        listener.Listen(1);
        listening.Set();
        if (!listener.Poll(TimeSpan.FromSeconds(30), SelectMode.SelectRead))
        {
            throw new TimeoutException("No connection reached the kernel side.");
        }

        Socket client = listener.Accept();
        client.ReceiveTimeout = (int)TransferTimeout.TotalMilliseconds;
        client.SendTimeout = (int)TransferTimeout.TotalMilliseconds;
        return client;
    }
}
