using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// The zero-copy burst API with offloads against a real peer: QEMU 7.2's virtio-net with a TAP backend
/// (<c>vnet_hdr=on</c>) and a kernel TCP socket in a network namespace of the test's own. The driver side is
/// <see cref="BurstTcpEndpoint"/>, which uses only ReceiveBurst/ReleaseBurst and AllocateBurst/AllocateLargeBurst/
/// TransmitBurst: the kernel's GUEST_TSO4 frames above the MTU arrive with their metadata, and the driver's large
/// segments leave with a per-packet segmentation request the device (HOST_TSO4, CSUM) carries out.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapBurstOffloadTests
{
    private const int TransferBytes = 4 << 20;
    private const ushort KernelPort = 5002;
    private const int Mtu = 1500;
    private const int Mss = Mtu - 40;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task KernelTsoFramesArriveThroughReceiveBurstWithTheirOffloadMetadataAndTheStreamIntact()
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns);
        using VirtioNetDevice net = Open(board, ns);

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

        BurstTcpEndpoint endpoint = Endpoint(net);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        byte[] received = endpoint.ReceiveAll(TransferTimeout);
        Assert.Equal(0, await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken));

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{endpoint.FramesReceived} frames, {endpoint.GsoFramesReceived} GSO, {endpoint.FramesLargerThanMtu} above the MTU, {endpoint.MultiBufferFrames} in several buffers, longest {endpoint.LongestFrameReceived}; checksums {string.Join(", ", endpoint.ChecksumStates.Select(p => $"{p.Key} {p.Value}"))}; {endpoint.PartialChecksumsCompletedHere} completed by the endpoint; bad {endpoint.BadChecksums}; mismatches {endpoint.MetadataMismatches}; errors {net.ReceiveStatistics.Errors}");
        Assert.Equal(data.Length, received.Length);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.Equal(0, endpoint.BadChecksums);
        Assert.Equal(0, endpoint.MetadataMismatches);
        Assert.Equal(0, net.ReceiveStatistics.Errors);

        // GUEST_TSO4: the kernel hands the TAP segments larger than the MTU; they arrive whole, in several mergeable
        // buffers, as GSO with their partial checksums, completed by the driver on some bursts and left (with where) on others.
        Assert.True(endpoint.GsoFramesReceived > 0, "no GSO frame arrived");
        Assert.True(endpoint.FramesLargerThanMtu > 0, $"no frame above {Mtu + 14} bytes arrived (longest {endpoint.LongestFrameReceived})");
        Assert.True(endpoint.MultiBufferFrames > 0, "no frame spanned several buffers");
        Assert.True(endpoint.ChecksumStates.GetValueOrDefault(ReceivedChecksumState.Completed) > 0, "the driver completed no partial checksum");
        Assert.True(endpoint.PartialChecksumsCompletedHere > 0, "no partial checksum was handed out as Partial");
    }

    [Fact]
    public async Task LargeSegmentsFromTransmitBurstAreCutByTheDeviceAndReachAKernelSocketIntact()
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns);
        using VirtioNetDevice net = Open(board, ns);

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

        BurstTcpEndpoint endpoint = Endpoint(net);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        endpoint.SendAll(data, TransferTimeout);
        (long count, byte[] hash) = await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken);

        Assert.Equal(data.Length, count);
        Assert.Equal(SHA256.HashData(data), hash);

        // One GSO packet per large segment: far fewer packets than MSS-sized frames would take.
        long packets = net.TransmitStatistics.Packets;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{packets} packets, {net.TransmitStatistics.Bytes} bytes sent, {endpoint.LargeSegmentsSent} segmentation requests, {endpoint.Retransmissions} retransmissions");
        Assert.True(endpoint.LargeSegmentsSent > 0, "no segment was sent with a segmentation request");
        Assert.True(packets * 3 < data.Length / Mss, $"{packets} packets sent for {data.Length} bytes: the device did not segment");
    }

    private static NetworkNamespace NetworkNamespaceForTest()
    {
        KernelPeerRequirement.EnsureAvailable();
        return NetworkNamespace.Create();
    }

    private static RiscvVirtBoard StartBoard(NetworkNamespace ns) =>
        RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev }, TestContext.Current.CancellationToken);

    private static VirtioNetDevice Open(RiscvVirtBoard board, NetworkNamespace ns)
    {
        VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { Mode = OperationMode.Poll, Offloads = true });
        try
        {
            const ulong needed = VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4 | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.MrgRxBuf;
            Assert.Equal(needed, net.NegotiatedFeatures & needed);
            ns.MoveTapIn(Mtu, net.MacAddress.Span);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    private static BurstTcpEndpoint Endpoint(VirtioNetDevice net) =>
        new(net, NetworkNamespace.KernelMac, IPAddress.Parse(NetworkNamespace.DriverAddress), IPAddress.Parse(NetworkNamespace.KernelAddress),
            (ushort)Random.Shared.Next(32768, 60000), KernelPort, Mss, Mss * (60000 / Mss));

    // On the namespace's thread: listen on the kernel address, say so, and take one connection.
    private static Socket AcceptOne(ManualResetEventSlim listening)
    {
        IPAddress address = IPAddress.Parse(NetworkNamespace.KernelAddress);
        using var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(address, KernelPort));
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
