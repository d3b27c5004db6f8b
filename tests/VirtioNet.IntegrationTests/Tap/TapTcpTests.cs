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
/// software segmentation, and with every offload off (software checksums and segmentation), at MTU 1500 and 9000, over
/// IPv4 and IPv6 (HOST_TSO6/GSO_TCPV6 out, GUEST_TSO6 in). And QEMU's receive segment coalescing (RSC_EXT): the kernel's
/// MSS-sized segments arrive coalesced, with the segment counts beside them.
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
    [InlineData(OffloadMode.All, 1500, 4)]
    [InlineData(OffloadMode.ChecksumOnly, 1500, 4)]
    [InlineData(OffloadMode.None, 1500, 4)]
    [InlineData(OffloadMode.None, 9000, 4)]
    [InlineData(OffloadMode.All, 9000, 4)]
    [InlineData(OffloadMode.All, 1500, 6)]
    [InlineData(OffloadMode.None, 1500, 6)]
    public async Task SeveralMegabytesFromTheDriverReachAKernelSocketIntact(OffloadMode mode, int mtu, int ipVersion)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns, mtu);
        using VirtioNetDevice net = Open(board, ns, mode, mtu);

        Task<(long Count, byte[] Hash)> kernel = KernelTcpPeer.Receive(ns, ipVersion, KernelPort, TransferTimeout);

        TestTcpEndpoint endpoint = Endpoint(net, mtu, ipVersion);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        endpoint.SendAll(data, TransferTimeout);
        (long count, byte[] hash) = await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken);

        Assert.Equal(data.Length, count);
        Assert.Equal(SHA256.HashData(data), hash);

        // How the bytes went: one GSO packet per large segment with TSO, MSS-sized frames otherwise.
        long packets = net.Pairs[0].TransmitStatistics.Packets;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{mode}, MTU {mtu}, IPv{ipVersion}: {packets} packets, {net.Pairs[0].TransmitStatistics.Bytes} bytes sent, {endpoint.Retransmissions} retransmissions; negotiated {string.Join(' ', VirtioNetFeatureNames.Describe(net.NegotiatedFeatures & VirtioNetOptions.OffloadFeatures))}");
        int mss = Mss(mtu, ipVersion);
        if (mode == OffloadMode.All)
        {
            // Large segments are cut only by the window: at least three times fewer packets than MSS-sized frames.
            Assert.True(packets * 3 < data.Length / mss, $"{packets} packets sent for {data.Length} bytes: the device did not segment");
        }
        else
        {
            Assert.True(packets >= data.Length / mss, $"{packets} packets sent for {data.Length} bytes with MSS {mss}: not segmented in software");
            Assert.True(net.Pairs[0].TransmitStatistics.Bytes / packets > (mtu > 1500 ? 4000 : 700), "the frames were not full-size");
        }
    }

    [Theory]
    [InlineData(OffloadMode.All, 1500, 4)]
    [InlineData(OffloadMode.ChecksumOnly, 1500, 4)]
    [InlineData(OffloadMode.None, 1500, 4)]
    [InlineData(OffloadMode.None, 9000, 4)]
    [InlineData(OffloadMode.All, 9000, 4)]
    [InlineData(OffloadMode.All, 1500, 6)]
    [InlineData(OffloadMode.None, 1500, 6)]
    public async Task SeveralMegabytesFromAKernelSocketReachTheDriverIntact(OffloadMode mode, int mtu, int ipVersion)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = StartBoard(ns, mtu);
        using VirtioNetDevice net = Open(board, ns, mode, mtu);

        Task<int> kernel = KernelTcpPeer.Send(ns, ipVersion, KernelPort, data, TransferTimeout);

        TestTcpEndpoint endpoint = Endpoint(net, mtu, ipVersion);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        byte[] received = endpoint.ReceiveAll(TransferTimeout);
        Assert.Equal(0, await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken));

        Assert.Equal(data.Length, received.Length);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.Equal(0, endpoint.BadChecksums);

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{mode}, MTU {mtu}, IPv{ipVersion}: {endpoint.FramesReceived} frames received, {endpoint.GsoFramesReceived} GSO, {endpoint.FramesLargerThanMtu} above the MTU, longest {endpoint.LongestFrameReceived}; checksums {string.Join(", ", endpoint.ChecksumStates.Select(p => $"{p.Key} {p.Value}"))}; errors {net.Pairs[0].ReceiveStatistics.Errors}");
        int largestFrame = mtu + EthernetFrame.HeaderLength;
        if (mode == OffloadMode.All)
        {
            // GUEST_TSO4/6: the kernel hands the TAP segments larger than the MTU, and the driver delivers them whole.
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

        if (ipVersion == 6)
        {
            // The kernel found the driver's IPv6 address by neighbour discovery, answered by the endpoint.
            Assert.True(endpoint.NeighbourSolicitationsAnswered > 0, "no neighbour solicitation was answered");
        }
    }

    /// <summary>
    /// QEMU's receive segment coalescing (<c>guest_rsc_ext=on</c>, VIRTIO_NET_F_RSC_EXT with GUEST_TSO4/6): QEMU 7.2
    /// coalesces, in virtio_net_rsc_receive4/6, in-order TCP segments of one flow that carry no TCP options, no IP options
    /// or fragments, no ECN, no SYN/FIN/RST/URG, and (IPv4) DF, until the payload would pass 64 KiB or rsc_interval runs
    /// out; it then writes gso_type TCPV4/TCPV6, VIRTIO_NET_HDR_F_RSC_INFO and the segment count into csum_start. The
    /// segments must reach it MSS-sized: with the offloads QEMU asks of the TAP for GUEST_CSUM/TSO the kernel would send
    /// 64 KiB GSO packets that leave nothing to coalesce, so the test turns the TAP's transmit checksum (and with it TSO
    /// and SG) off inside the namespace, as <c>ethtool -K TAP tx off</c> does. The endpoint's SYN carries only an MSS
    /// option, so the kernel's segments carry no timestamps (QEMU does not coalesce segments with TCP options).
    /// </summary>
    /// <remarks>
    /// What QEMU 7.2 writes (virtio_net_rsc_drain_seg, seen here, and the same with 10.0): flags RSC_INFO alone, gso_size
    /// 0, and the frame with the first segment's TCP checksum and, over IPv4, its IPv4 header checksum unchanged after the
    /// lengths grew: both wrong. §5.1.6.4.1 asks NEEDS_CSUM and gso_size of a GSO frame; without NEEDS_CSUM or DATA_VALID
    /// the driver must not rely on the checksum (§5.1.6.4.2), so it reports these frames
    /// <see cref="ReceivedChecksumState.None"/>, and a stack that checks checksums would drop each. The endpoint takes
    /// those (and only those: frames without coalescing information, or with a checksum state that claims something,
    /// must still be right) and the SHA-256 of the whole stream stands in for their checksums; each frame's segment count
    /// must account for its payload (no more than count times the MSS).
    /// </remarks>
    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task KernelSegmentsCoalescedByQemuReachTheDriverWithTheirSegmentCounts(int ipVersion)
    {
        byte[] data = RandomNumberGenerator.GetBytes(TransferBytes);
        using var ns = NetworkNamespaceForTest();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(
            new QemuMachineOptions { ModernMmio = true, Netdev = ns.Netdev, NetDeviceProperties = "guest_rsc_ext=on" },
            TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll, ReceiveCoalescingInfo = true });
        Assert.True((net.NegotiatedFeatures & VirtioNetFeatures.RscExt) != 0, "RSC_EXT was not negotiated");
        ns.MoveTapIn(1500, net.MacAddress.Span);
        Assert.True(await ns.Run(() => TapTransmitChecksum.TurnOff(ns.TapName)), "the TAP's transmit checksum stayed on");

        Task<int> kernel = KernelTcpPeer.Send(ns, ipVersion, KernelPort, data, TransferTimeout);

        TestTcpEndpoint endpoint = Endpoint(net, 1500, ipVersion, acceptUncheckedCoalescedFrames: true);
        endpoint.Connect(TimeSpan.FromSeconds(10));
        byte[] received = endpoint.ReceiveAll(TransferTimeout);

        Assert.Equal(0, await kernel.WaitAsync(TransferTimeout, TestContext.Current.CancellationToken));

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"IPv{ipVersion}: {endpoint.FramesReceived} frames, {endpoint.CoalescedFramesReceived} with RSC_INFO ({endpoint.UncheckedCoalescedFramesAccepted} with wrong checksums), {endpoint.MultiSegmentFramesReceived} of several segments, most {endpoint.MostSegmentsInAFrame}; {net.Pairs[0].ReceiveStatistics.CoalescedSegments} segments counted; longest {endpoint.LongestFrameReceived}; checksums {string.Join(", ", endpoint.ChecksumStates.Select(p => $"{p.Key} {p.Value}"))}; bad {endpoint.BadChecksums}; errors {net.Pairs[0].ReceiveStatistics.Errors}");
        Assert.Equal(data.Length, received.Length);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.Equal(0, endpoint.BadChecksums);
        Assert.Equal(0, endpoint.SegmentCountsTooLow);
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.True(endpoint.MultiSegmentFramesReceived > 0, "no frame of several coalesced segments arrived");
        Assert.True(endpoint.LongestFrameReceived > 1514, $"no coalesced frame above the MTU arrived (longest {endpoint.LongestFrameReceived})");
        Assert.True(net.Pairs[0].ReceiveStatistics.CoalescedSegments > endpoint.CoalescedFramesReceived, "the statistics did not count the coalesced segments");
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
            OperationMode = OperationMode.Poll,
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

    // The MSS: the MTU less the IPv4 (20) or IPv6 (40) header and the TCP header (20).
    private static int Mss(int mtu, int ipVersion) => mtu - (ipVersion == 6 ? 60 : 40);

    internal static TestTcpEndpoint Endpoint(VirtioNetDevice net, int mtu, int ipVersion, bool acceptUncheckedCoalescedFrames = false, ushort kernelPort = KernelPort)
    {
        int mss = Mss(mtu, ipVersion);

        // Hand the driver large segments in every mode: the driver, not the endpoint, decides how they are cut.
        int largest = mss * Math.Max(1, 60000 / mss);
        return new TestTcpEndpoint(
            net, NetworkNamespace.KernelMac, KernelTcpPeer.DriverAddress(ipVersion), KernelTcpPeer.KernelAddress(ipVersion),
            (ushort)Random.Shared.Next(32768, 60000), kernelPort, mss, largest)
        {
            AcceptUncheckedCoalescedFrames = acceptUncheckedCoalescedFrames,
        };
    }
}
