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
/// (<c>vnet_hdr=on</c>) and a kernel TCP socket in a network namespace of the test's own, over IPv4 and IPv6. The
/// driver side is <see cref="BurstTcpEndpoint"/>, which uses only ReceiveBurst/ReleaseBurst and AllocateBurst/
/// AllocateLargeBurst/TransmitBurst. With the offloads, the kernel's GUEST_TSO4/TSO6 frames above the MTU arrive with
/// their metadata, and the driver's large segments leave with a per-packet segmentation request the device (HOST_TSO4/
/// TSO6, CSUM) carries out. Without them (the software fallback), frames arrive MTU-sized with whole checksums, and the
/// burst API computes each transmitted TCP checksum in place, in the buffer the endpoint wrote.
/// </summary>
[Trait("Peer", "Qemu")]
[Trait("Peer", "Kernel")]
public sealed class TapBurstOffloadTests
{
    private const int TransferBytes = 4 << 20;
    private const ushort KernelPort = 5002;
    private const int Mtu = 1500;
    private const int LargestFrame = Mtu + 14;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(120);

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task KernelTsoFramesArriveThroughReceiveBurstWithTheirOffloadMetadataAndTheStreamIntact(int ipVersion)
    {
        (BurstTcpEndpoint endpoint, long errors) = await ReceiveFromKernel(offloads: true, ipVersion);

        // GUEST_TSO4/TSO6: the kernel hands the TAP segments larger than the MTU; they arrive whole, in several mergeable
        // buffers, as GSO of the IP version with their partial checksums, completed by the driver on some bursts and left
        // (with where) on others.
        Assert.Equal(0, errors);
        Assert.True(endpoint.GsoFramesReceived > 0, "no GSO frame arrived");
        Assert.True(endpoint.FramesLargerThanMtu > 0, $"no frame above {LargestFrame} bytes arrived (longest {endpoint.LongestFrameReceived})");
        Assert.True(endpoint.MultiBufferFrames > 0, "no frame spanned several buffers");
        Assert.True(endpoint.ChecksumStates.GetValueOrDefault(ReceivedChecksumState.Completed) > 0, "the driver completed no partial checksum");
        Assert.True(endpoint.PartialChecksumsCompletedHere > 0, "no partial checksum was handed out as Partial");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task WithoutOffloadsKernelFramesArriveThroughReceiveBurstMtuSizedWithWholeChecksums(int ipVersion)
    {
        (BurstTcpEndpoint endpoint, long errors) = await ReceiveFromKernel(offloads: false, ipVersion);

        // No GUEST_CSUM or GUEST_TSO: the kernel segments and checksums before the TAP; nothing is GSO, nothing above the
        // MTU, no checksum partial, and the endpoint found every checksum right.
        Assert.Equal(0, errors);
        Assert.Equal(0, endpoint.GsoFramesReceived);
        Assert.True(endpoint.LongestFrameReceived <= LargestFrame, $"a {endpoint.LongestFrameReceived}-byte frame arrived without GSO");
        Assert.Equal([ReceivedChecksumState.None], endpoint.ChecksumStates.Keys);
        Assert.Equal(0, endpoint.PartialChecksumsCompletedHere);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task LargeSegmentsFromTransmitBurstAreCutByTheDeviceAndReachAKernelSocketIntact(int ipVersion)
    {
        (BurstTcpEndpoint endpoint, long packets) = await SendToKernel(offloads: true, ipVersion);

        // One GSO packet per large segment: far fewer packets than MSS-sized frames would take.
        Assert.True(endpoint.LargeSegmentsSent > 0, "no segment was sent with a segmentation request");
        Assert.True(packets * 3 < TransferBytes / Mss(ipVersion), $"{packets} packets sent for {TransferBytes} bytes: the device did not segment");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task WithoutOffloadsMssSizedFramesFromTransmitBurstCarryChecksumsComputedInPlaceAndReachAKernelSocketIntact(int ipVersion)
    {
        (BurstTcpEndpoint endpoint, long packets) = await SendToKernel(offloads: false, ipVersion);

        // No CSUM: the burst API computed every TCP checksum in the caller's buffer, and the kernel, which checks them,
        // took the whole stream. No large buffers exist to ask segmentation with: MSS-sized frames only.
        Assert.Equal(0, endpoint.LargeSegmentsSent);
        Assert.True(packets >= TransferBytes / Mss(ipVersion), $"{packets} packets sent for {TransferBytes} bytes: not MSS-sized");
    }

    // A kernel socket sends TransferBytes to the endpoint, which receives them through the burst API; the stream is
    // compared and the endpoint's findings checked. Returns the endpoint and the driver's receive error count.
    private static async Task<(BurstTcpEndpoint Endpoint, long Errors)> ReceiveFromKernel(bool offloads, int ipVersion)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns);
        using VirtioNetDevice net = Open(board, ns, offloads, ipVersion);

        Task<int> kernel = KernelTcpPeer.Send(ns, ipVersion, KernelPort, data, TransferTimeout);

        BurstTcpEndpoint endpoint = Endpoint(net, offloads, ipVersion);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        byte[] received = endpoint.ReceiveAll(TransferTimeout);
        Assert.Equal(0, await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken));

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"IPv{ipVersion}, offloads {offloads}: {endpoint.FramesReceived} frames, {endpoint.GsoFramesReceived} GSO, {endpoint.FramesLargerThanMtu} above the MTU, {endpoint.MultiBufferFrames} in several buffers, longest {endpoint.LongestFrameReceived}; checksums {string.Join(", ", endpoint.ChecksumStates.Select(p => $"{p.Key} {p.Value}"))}; {endpoint.PartialChecksumsCompletedHere} completed by the endpoint; bad {endpoint.BadChecksums}; mismatches {endpoint.MetadataMismatches}; {endpoint.NeighbourSolicitationsAnswered} neighbour solicitations answered; errors {net.Pairs[0].ReceiveStatistics.Errors}");
        Assert.Equal(data.Length, received.Length);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.Equal(0, endpoint.BadChecksums);
        Assert.Equal(0, endpoint.MetadataMismatches);
        if (ipVersion == 6)
        {
            // The kernel found the endpoint's IPv6 address by neighbour discovery, answered through TransmitBurst.
            Assert.True(endpoint.NeighbourSolicitationsAnswered > 0, "no neighbour solicitation was answered");
        }

        return (endpoint, net.Pairs[0].ReceiveStatistics.Errors);
    }

    // The endpoint sends TransferBytes through the burst API to a kernel socket, which hashes them; the hash is compared.
    // Returns the endpoint and the packets the driver sent.
    private static async Task<(BurstTcpEndpoint Endpoint, long Packets)> SendToKernel(bool offloads, int ipVersion)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns);
        using VirtioNetDevice net = Open(board, ns, offloads, ipVersion);

        Task<(long Count, byte[] Hash)> kernel = KernelTcpPeer.Receive(ns, ipVersion, KernelPort, TransferTimeout);

        BurstTcpEndpoint endpoint = Endpoint(net, offloads, ipVersion);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        endpoint.SendAll(data, TransferTimeout);
        (long count, byte[] hash) = await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken);

        long packets = net.Pairs[0].TransmitStatistics.Packets;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"IPv{ipVersion}, offloads {offloads}: {packets} packets, {net.Pairs[0].TransmitStatistics.Bytes} bytes sent, {endpoint.LargeSegmentsSent} segmentation requests, {endpoint.Retransmissions} retransmissions");
        Assert.Equal(data.Length, count);
        Assert.Equal(SHA256.HashData(data), hash);
        if (!offloads)
        {
            Assert.Equal(0, net.Pairs[0].TransmitQueue.AllocateLargeBurst(new TransmitPacket[1]));
        }

        return (endpoint, packets);
    }

    private static NetworkNamespace NetworkNamespaceForTest()
    {
        KernelPeerRequirement.EnsureAvailable();
        return NetworkNamespace.Create();
    }

    private static RiscvVirtBoard StartBoard(NetworkNamespace ns) =>
        RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev }, TestContext.Current.CancellationToken);

    private static VirtioNetDevice Open(RiscvVirtBoard board, NetworkNamespace ns, bool offloads, int ipVersion)
    {
        VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, Offloads = offloads });
        try
        {
            ulong needed = VirtioNetFeatures.Csum | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.MrgRxBuf |
                (ipVersion == 6 ? VirtioNetFeatures.HostTso6 | VirtioNetFeatures.GuestTso6 : VirtioNetFeatures.HostTso4 | VirtioNetFeatures.GuestTso4);
            Assert.Equal(offloads ? needed : VirtioNetFeatures.MrgRxBuf, net.NegotiatedFeatures & needed);
            Assert.Equal(0UL, offloads ? 0 : net.NegotiatedFeatures & VirtioNetOptions.OffloadFeatures);
            ns.MoveTapIn(Mtu, net.MacAddress.Span);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    // The MSS: the MTU less the IPv4 (20) or IPv6 (40) header and the TCP header (20).
    private static int Mss(int ipVersion) => Mtu - (ipVersion == 6 ? 60 : 40);

    // Large segments with the device's segmentation; one MSS without, as the burst API does not segment in software.
    private static BurstTcpEndpoint Endpoint(VirtioNetDevice net, bool offloads, int ipVersion)
    {
        int mss = Mss(ipVersion);
        return new(
            net, NetworkNamespace.KernelMac, KernelTcpPeer.DriverAddress(ipVersion), KernelTcpPeer.KernelAddress(ipVersion),
            (ushort)Random.Shared.Next(32768, 60000), KernelPort, mss, offloads ? mss * (60000 / mss) : mss);
    }
}
