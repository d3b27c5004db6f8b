using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// UDP segmentation offload against a real device: QEMU 10.0's virtio-net (7.2 has no USO) with a TAP backend
/// (<c>vnet_hdr=on</c>; this kernel's TAP takes TUN_F_USO4/USO6, so QEMU offers HOST_USO and GUEST_USO4/6) in a
/// network namespace of the test's own, the kernel's UDP on the other side. Driver to kernel: 60 KB payloads handed
/// over whole, cut by the device (one GSO_UDP_L4 packet reaches the TAP) or by the driver (host_uso=off: whole
/// datagrams), and every datagram arrives intact at a kernel socket. Kernel to driver: a socket with UDP_SEGMENT sends
/// 60 KB at a time and, with GUEST_USO4/6, the driver receives one frame far larger than the MTU reported as
/// GSO_UDP_L4 with the segment size, its partial checksum completed and the payload intact.
/// Ref: virtio v1.2 §5.1.6.2, §5.1.6.4 (VIRTIO_NET_HDR_GSO_UDP_L4).
/// </summary>
[Trait("Peer", "Qemu10")]
[Trait("Peer", "Kernel")]
public sealed class TapUsoTests
{
    private const int PayloadBytes = 60000;
    private const int DatagramSize = 1400;
    private const int Rounds = 20;
    private const int DatagramsPerRound = (PayloadBytes + DatagramSize - 1) / DatagramSize;
    private const ushort KernelPort = 5002;
    private const ushort DriverPort = 5003;

    // setsockopt(SOL_UDP, UDP_SEGMENT, gso_size): the kernel sends one GSO packet per send, cut into gso_size datagrams
    // by the device or by the stack. linux/udp.h.
    private const int SolUdp = 17;
    private const int UdpSegment = 103;

    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Who cuts a large UDP payload on transmit.</summary>
    public enum TransmitPath
    {
        /// <summary>HOST_USO: the device gets one GSO_UDP_L4 packet.</summary>
        DeviceUso,

        /// <summary>host_uso=off: the driver cuts whole datagrams, the device completes their checksums (CSUM).</summary>
        SoftwareUso,

        /// <summary>host_uso=off,csum=off: the driver cuts and checksums; the kernel checks every checksum.</summary>
        SoftwareUsoAndChecksum,
    }

    [Theory]
    [InlineData(TransmitPath.DeviceUso, AddressFamily.InterNetwork)]
    [InlineData(TransmitPath.DeviceUso, AddressFamily.InterNetworkV6)]
    [InlineData(TransmitPath.SoftwareUso, AddressFamily.InterNetwork)]
    [InlineData(TransmitPath.SoftwareUso, AddressFamily.InterNetworkV6)]
    [InlineData(TransmitPath.SoftwareUsoAndChecksum, AddressFamily.InterNetwork)]
    [InlineData(TransmitPath.SoftwareUsoAndChecksum, AddressFamily.InterNetworkV6)]
    public async Task LargeUdpPayloadsFromTheDriverReachAKernelSocketAsWholeDatagrams(TransmitPath path, AddressFamily family)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string properties = path switch
        {
            TransmitPath.DeviceUso => string.Empty,
            TransmitPath.SoftwareUso => "host_uso=off",
            _ => "host_uso=off,csum=off",
        };
        using var ns = NetworkNamespaceForTest(out string qemu);
        using RiscvVirtBoard board = StartBoard(ns, qemu, properties);
        using VirtioNetDevice net = Open(board, ns);

        ulong negotiated = net.NegotiatedFeatures;
        Assert.Equal(path == TransmitPath.DeviceUso, (negotiated & VirtioNetFeatures.HostUso) != 0);
        Assert.Equal(path != TransmitPath.SoftwareUsoAndChecksum, (negotiated & VirtioNetFeatures.Csum) != 0);
        if (path == TransmitPath.SoftwareUsoAndChecksum)
        {
            // QEMU still offers the segmentation bits with csum=off; they require CSUM, so the driver leaves them (§5.1.3.1).
            Assert.NotEqual(0UL, net.OfferedFeatures & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6));
            Assert.Equal(0UL, negotiated & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostEcn | VirtioNetFeatures.HostUso));
        }

        byte[][] payloads = [.. Enumerable.Range(0, Rounds).Select(r => Payload(r))];
        long tapPacketsBefore = TapPackets(ns, "rx");
        var delivered = new StrongBox<int>(0);
        using var listening = new ManualResetEventSlim();
        using var pathUp = new ManualResetEventSlim();
        Task<List<byte[]>> kernel = ns.Run(() =>
        {
            using Socket socket = UsoFrames.BindKernelSocket(family, KernelPort);
            socket.ReceiveTimeout = (int)StepTimeout.TotalMilliseconds;
            socket.ReceiveBufferSize = 4 << 20;
            listening.Set();
            var datagrams = new List<byte[]>();
            byte[] buffer = new byte[65536];
            while (datagrams.Count < Rounds * DatagramsPerRound)
            {
                int n = socket.Receive(buffer);
                if (n == WarmUpLength)
                {
                    // The path is up (see WarmUp); later warm-up datagrams still in flight are not data either.
                    pathUp.Set();
                    continue;
                }

                datagrams.Add(buffer[..n]);
                Interlocked.Increment(ref delivered.Value);
            }

            return datagrams;
        });
        Assert.True(listening.Wait(StepTimeout, ct), "the kernel socket was never bound");

        VirtioNetTransmitQueue tx = net.TransmitQueues[0];
        int warmUps = WarmUp(tx, net.MacAddress.Span, family, pathUp, ns, ct);

        // The counted part starts once the TAP has taken every warm-up frame (one TAP packet each).
        Assert.True(SpinWait.SpinUntil(() => TapPackets(ns, "rx") - tapPacketsBefore >= warmUps, StepTimeout), "the warm-up frames never all reached the TAP");
        tapPacketsBefore += warmUps;
        long packetsBefore = net.TransmitStatistics.Packets;
        for (int round = 0; round < Rounds; round++)
        {
            byte[] frame = UsoFrames.Build(net.MacAddress.Span, family, DriverPort, KernelPort, payloads[round]);
            var clock = Stopwatch.StartNew();
            while (!tx.TrySend(frame, TransmitOffloadRequest.Segmentation(DatagramSize)))
            {
                Assert.True(clock.Elapsed < StepTimeout, $"round {round}: the transmit queue stayed full");
                Thread.Yield();
            }

            // One payload at a time: the next goes once the kernel socket has every datagram of this one.
            int expected = (round + 1) * DatagramsPerRound;
            while (Volatile.Read(ref delivered.Value) < expected && !kernel.IsCompleted)
            {
                if (clock.Elapsed >= StepTimeout)
                {
                    // What each stage saw, so that a failure says where the datagrams stopped.
                    Assert.Fail(
                        $"round {round}: the kernel socket has {Volatile.Read(ref delivered.Value)} of {expected} datagrams; " +
                        $"transmitq1 sent {tx.Statistics.Packets} packets with {tx.Statistics.Notifications} notifications, " +
                        $"{tx.SlotsFree} slots free; the TAP received {TapPackets(ns, "rx") - tapPacketsBefore} packets; " +
                        $"kernel counters: {KernelDropCounters(ns)}");
                }

                Thread.Sleep(1);
            }
        }

        List<byte[]> datagrams = await kernel.WaitAsync(StepTimeout, ct);
        for (int i = 0; i < datagrams.Count; i++)
        {
            int round = i / DatagramsPerRound;
            int offset = (i % DatagramsPerRound) * DatagramSize;
            byte[] expected = payloads[round][offset..Math.Min(PayloadBytes, offset + DatagramSize)];
            Assert.True(expected.AsSpan().SequenceEqual(datagrams[i]), $"datagram {i} (round {round}, offset {offset}): {datagrams[i].Length} bytes, not the {expected.Length} sent");
        }

        // What the device handed the TAP: one GSO packet per payload with HOST_USO (the TAP counts each write once,
        // before the kernel cuts it), whole datagrams otherwise.
        long tapPackets = TapPackets(ns, "rx") - tapPacketsBefore;
        long sent = net.TransmitStatistics.Packets - packetsBefore;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{path} {family}: driver sent {sent} packets ({net.TransmitStatistics.Bytes} bytes), the TAP took {tapPackets}, the kernel socket received {datagrams.Count} datagrams; negotiated {string.Join(' ', VirtioNetFeatureNames.Describe(negotiated & VirtioNetOptions.OffloadFeatures))}");
        Assert.Equal(path == TransmitPath.DeviceUso ? Rounds : Rounds * DatagramsPerRound, sent);
        Assert.Equal(sent, tapPackets);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
    }

    [Theory]
    [InlineData(AddressFamily.InterNetwork, "")]
    [InlineData(AddressFamily.InterNetworkV6, "")]
    [InlineData(AddressFamily.InterNetwork, "mrg_rxbuf=off")]
    [InlineData(AddressFamily.InterNetworkV6, "mrg_rxbuf=off")]
    [InlineData(AddressFamily.InterNetwork, "guest_uso4=off,guest_uso6=off")]
    [InlineData(AddressFamily.InterNetworkV6, "guest_uso4=off,guest_uso6=off")]
    public async Task UdpGsoFromAKernelSocketReachesTheDriverAsLargeFramesWithTheSegmentSize(AddressFamily family, string properties)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        bool guestUso = !properties.Contains("guest_uso4=off", StringComparison.Ordinal);
        using var ns = NetworkNamespaceForTest(out string qemu);
        using RiscvVirtBoard board = StartBoard(ns, qemu, properties);
        using VirtioNetDevice net = Open(board, ns);

        ulong guestUsoBits = VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;
        Assert.Equal(guestUso ? guestUsoBits : 0, net.NegotiatedFeatures & guestUsoBits);
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.GuestCsum);
        Assert.True(net.MaxReceiveFrameLength >= EthernetFrame.HeaderLength + 40 + 8 + PayloadBytes, $"receive frames are limited to {net.MaxReceiveFrameLength} bytes");

        byte[][] payloads = [.. Enumerable.Range(0, Rounds).Select(r => Payload(-r - 1))];
        long tapPacketsBefore = TapPackets(ns, "tx");
        using var go = new SemaphoreSlim(0);
        Task<int> kernel = ns.Run(() =>
        {
            using Socket socket = UsoFrames.BindKernelSocket(family, KernelPort);
            socket.SetRawSocketOption(SolUdp, UdpSegment, BitConverter.GetBytes(DatagramSize));
            var driver = new IPEndPoint(UsoFrames.DriverAddress(family), DriverPort);
            int rounds = 0;
            for (; rounds < Rounds; rounds++)
            {
                if (!go.Wait(StepTimeout))
                {
                    break;
                }

                Assert.Equal(PayloadBytes, socket.SendTo(payloads[rounds], driver));
            }

            return rounds;
        });

        byte[] buffer = new byte[net.MaxReceiveFrameLength];
        byte[] reassembled = new byte[PayloadBytes];
        int frames = 0, gsoFrames = 0, framesAboveMtu = 0, longest = 0;
        var gsoSizes = new HashSet<int>();
        var checksums = new Dictionary<ReceivedChecksumState, int>();
        VirtioNetReceiveQueue rx = net.ReceiveQueues[0];
        for (int round = 0; round < Rounds; round++)
        {
            go.Release();
            int filled = 0;
            var clock = Stopwatch.StartNew();
            while (filled < PayloadBytes)
            {
                Assert.True(clock.Elapsed < StepTimeout, $"round {round}: {filled} of {PayloadBytes} bytes arrived ({frames} frames so far)");
                if (!rx.TryReceive(buffer, out int length, out ReceivedFrameInfo info))
                {
                    Thread.Yield();
                    continue;
                }

                Span<byte> frame = buffer.AsSpan(0, length);
                if (!PacketLayout.TryParse(frame, out PacketLayout layout) || layout.IsTcp || layout.IsIPv6 != (family == AddressFamily.InterNetworkV6) ||
                    System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(frame[(layout.TransportOffset + 2)..]) != DriverPort)
                {
                    continue;   // IPv6 neighbour discovery, MLD and the like from the kernel.
                }

                frames++;
                longest = Math.Max(longest, length);
                framesAboveMtu += length > net.Mtu + EthernetFrame.HeaderLength ? 1 : 0;
                checksums[info.Checksum] = checksums.GetValueOrDefault(info.Checksum) + 1;
                if (info.IsGso)
                {
                    gsoFrames++;
                    gsoSizes.Add(info.GsoSize);
                    Assert.Equal(VirtioNetGsoType.UdpL4, info.GsoType);
                }

                // The checksum the driver completed covers the whole (coalesced) datagram as the kernel summed it.
                Assert.True(ReceiveOffload.IsTransportChecksumValid(frame, layout), $"round {round}: a {length}-byte frame's UDP checksum is wrong after the driver's checks ({info.Checksum})");
                ReadOnlySpan<byte> payload = frame[layout.HeaderLength..layout.PacketEnd];
                Assert.True(filled + payload.Length <= PayloadBytes, $"round {round}: {filled + payload.Length} bytes, more than were sent");
                payload.CopyTo(reassembled.AsSpan(filled));
                filled += payload.Length;
            }

            Assert.True(payloads[round].AsSpan().SequenceEqual(reassembled), $"round {round}: the payload differs from what the kernel sent");
        }

        Assert.Equal(Rounds, await kernel.WaitAsync(StepTimeout, ct));
        long tapPackets = TapPackets(ns, "tx") - tapPacketsBefore;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{family} {properties}: {frames} frames, {gsoFrames} GSO (sizes {string.Join(',', gsoSizes)}), {framesAboveMtu} above the MTU, longest {longest}; the TAP sent {tapPackets}; checksums {string.Join(", ", checksums.Select(p => $"{p.Key} {p.Value}"))}; receive errors {net.ReceiveStatistics.Errors}; mode {net.ReceiveMode}");
        Assert.Equal(0, net.ReceiveStatistics.Errors);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        if (guestUso)
        {
            // The kernel left each 60 KB send whole: one GSO_UDP_L4 frame per send, gso_size the UDP_SEGMENT value.
            Assert.Equal(Rounds, frames);
            Assert.Equal(Rounds, gsoFrames);
            Assert.Equal(Rounds, framesAboveMtu);
            Assert.Equal([DatagramSize], gsoSizes);
        }
        else
        {
            // Without GUEST_USO the kernel cuts before the TAP: whole datagrams, none above the MTU, none GSO.
            Assert.Equal(Rounds * DatagramsPerRound, frames);
            Assert.Equal(0, gsoFrames);
            Assert.Equal(0, framesAboveMtu);
        }
    }

    // A datagram this long is the warm-up, never data (data datagrams are DatagramSize or the payload's remainder).
    private const int WarmUpLength = 1;

    // Before the counted rounds: small plain datagrams (checksum offload only), one every 50 ms, until the kernel socket has one. Right after the
    // namespace is set up the kernel may not deliver yet (a run once lost all 43 datagrams of the first payload and none
    // after); the rounds then measure the offload, not the namespace's bring-up.
    private static int WarmUp(VirtioNetTransmitQueue tx, ReadOnlySpan<byte> mac, AddressFamily family, ManualResetEventSlim pathUp, NetworkNamespace ns, CancellationToken ct)
    {
        byte[] frame = UsoFrames.Build(mac, family, DriverPort, KernelPort, new byte[WarmUpLength]);
        var clock = Stopwatch.StartNew();
        int sent = 0;
        while (!pathUp.Wait(sent == 0 ? 0 : 50, ct))
        {
            Assert.True(clock.Elapsed < StepTimeout, $"no plain {family} datagram reached the kernel socket in {StepTimeout.TotalSeconds} s ({sent} sent); kernel counters: {KernelDropCounters(ns)}");
            sent += tx.TrySend(frame, TransmitOffloadRequest.Checksum) ? 1 : 0;
            tx.Reclaim();
        }

        tx.Reclaim();
        TestContext.Current.TestOutputHelper?.WriteLine($"warm-up: {sent} datagram(s) sent before the kernel socket had one, after {clock.ElapsedMilliseconds} ms");
        return sent;
    }

    // The kernel's receive-side drop counters in the namespace that are not zero, and the TAP's address flags, for
    // failure messages.
    private static string KernelDropCounters(NetworkNamespace ns)
    {
        try
        {
            string addresses = ns.IpInside($"-br addr show dev {ns.TapName}").Trim();
            var counters = ns.ExecInside("cat /proc/net/snmp6").Split('\n')
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length == 2 && f[1] != "0" && (f[0].Contains("Discard", StringComparison.Ordinal) || f[0].Contains("Error", StringComparison.Ordinal) || f[0].Contains("NoRoute", StringComparison.Ordinal) || f[0].Contains("NoPorts", StringComparison.Ordinal)))
                .Select(f => $"{f[0]}={f[1]}");
            return $"{addresses}; {string.Join(' ', counters)}";
        }
        catch (InvalidOperationException e)
        {
            return $"(could not read them: {e.Message})";
        }
    }

    private static NetworkNamespace NetworkNamespaceForTest(out string qemu)
    {
        KernelPeerRequirement.EnsureAvailable();
        qemu = QemuRequirement.EnsureQemu10Available();
        return NetworkNamespace.Create();
    }

    private static RiscvVirtBoard StartBoard(NetworkNamespace ns, string qemu, string properties) =>
        RiscvVirtBoard.Start(
            new QemuMachineOptions { QemuPath = qemu, ModernMmio = true, Netdev = ns.Netdev, NetDeviceProperties = properties },
            TestContext.Current.CancellationToken);

    private static VirtioNetDevice Open(RiscvVirtBoard board, NetworkNamespace ns)
    {
        VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { Mode = OperationMode.Poll });
        try
        {
            ns.MoveTapIn(EthernetFrame.DefaultMtu, net.MacAddress.Span);
            UsoFrames.AddIPv6(ns, net.MacAddress.Span);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    private static byte[] Payload(int seed)
    {
        byte[] payload = new byte[PayloadBytes];
        new Random(seed).NextBytes(payload);
        return payload;
    }

    // The TAP's packet counter ("rx": frames QEMU wrote into it, one per write whatever GSO it carries; "tx": frames
    // the kernel handed QEMU), from `ip -s -j link`.
    private static long TapPackets(NetworkNamespace ns, string direction)
    {
        using JsonDocument json = JsonDocument.Parse(ns.IpInside($"-s -j link show dev {ns.TapName}"));
        return json.RootElement[0].GetProperty("stats64").GetProperty(direction).GetProperty("packets").GetInt64();
    }
}
