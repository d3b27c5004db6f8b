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
/// network namespace of the test's own, the kernel's UDP on the other side, through the copying API and through the
/// zero-copy burst API. Driver to kernel: 60 KB payloads handed over whole, cut by the device (one GSO_UDP_L4 packet
/// reaches the TAP) or by the driver (host_uso=off: whole datagrams; the burst API refuses the segmentation with
/// OffloadUnavailable and the caller writes the datagrams into buffers of their own), and every datagram arrives intact
/// at a kernel socket. Kernel to driver: a socket with UDP_SEGMENT sends 60 KB at a time and, with GUEST_USO4/6, the
/// driver receives one frame far larger than the MTU reported as GSO_UDP_L4 with the segment size, its partial checksum
/// completed (by the driver, or on every other burst round by the test where the burst metadata says) and the payload
/// intact. Ref: virtio v1.2 §5.1.6.2, §5.1.6.4 (VIRTIO_NET_HDR_GSO_UDP_L4).
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

    /// <summary>Who cuts × IP version, for the copying and the burst transmit tests alike.</summary>
    public static TheoryData<TransmitPath, AddressFamily> TransmitCases => new()
    {
        { TransmitPath.DeviceUso, AddressFamily.InterNetwork },
        { TransmitPath.DeviceUso, AddressFamily.InterNetworkV6 },
        { TransmitPath.SoftwareUso, AddressFamily.InterNetwork },
        { TransmitPath.SoftwareUso, AddressFamily.InterNetworkV6 },
        { TransmitPath.SoftwareUsoAndChecksum, AddressFamily.InterNetwork },
        { TransmitPath.SoftwareUsoAndChecksum, AddressFamily.InterNetworkV6 },
    };

    /// <summary>IP version × receive buffers and GUEST_USO, for the copying and the burst receive tests alike.</summary>
    public static TheoryData<AddressFamily, string> ReceiveCases => new()
    {
        { AddressFamily.InterNetwork, "" },
        { AddressFamily.InterNetworkV6, "" },
        { AddressFamily.InterNetwork, "mrg_rxbuf=off" },
        { AddressFamily.InterNetworkV6, "mrg_rxbuf=off" },
        { AddressFamily.InterNetwork, "guest_uso4=off,guest_uso6=off" },
        { AddressFamily.InterNetworkV6, "guest_uso4=off,guest_uso6=off" },
    };

    [Theory]
    [MemberData(nameof(TransmitCases))]
    public Task LargeUdpPayloadsFromTheDriverReachAKernelSocketAsWholeDatagrams(TransmitPath path, AddressFamily family) =>
        SendRoundsToKernel(path, family, (net, payload, round) =>
        {
            byte[] frame = UsoFrames.Build(net.MacAddress.Span, family, DriverPort, KernelPort, payload);
            var clock = Stopwatch.StartNew();
            while (!net.Pairs[0].TransmitQueue.TrySend(frame, TransmitOffloadRequest.Segmentation(DatagramSize)))
            {
                Assert.True(clock.Elapsed < StepTimeout, $"round {round}: the transmit queue stayed full");
                Thread.Yield();
            }
        });

    /// <summary>
    /// As <see cref="LargeUdpPayloadsFromTheDriverReachAKernelSocketAsWholeDatagrams"/>, through the burst API: each
    /// payload is written whole into a large transmit buffer and handed over with a segmentation request. With HOST_USO
    /// the device cuts it (gso_type UDP_L4); with host_uso=off the burst refuses it (OffloadUnavailable, it does not
    /// copy) and the caller writes the datagrams into ordinary buffers, one burst of them, each checksummed by the device
    /// (CSUM) or, with csum=off (no large buffers at all), by the driver in place.
    /// </summary>
    [Theory]
    [MemberData(nameof(TransmitCases))]
    public async Task LargeUdpPayloadsFromTransmitBurstReachAKernelSocketAsWholeDatagrams(TransmitPath path, AddressFamily family)
    {
        int refused = 0, segmented = 0;
        await SendRoundsToKernel(path, family, (net, payload, round) =>
        {
            VirtioNetTransmitQueue tx = net.Pairs[0].TransmitQueue;
            bool largeBuffers = (net.NegotiatedFeatures & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUso)) != 0;
            Assert.Equal(path != TransmitPath.SoftwareUsoAndChecksum, largeBuffers);
            var clock = Stopwatch.StartNew();
            var packets = new TransmitPacket[DatagramsPerRound];
            if (largeBuffers)
            {
                while (tx.AllocateLargeBurst(packets.AsSpan(0, 1)) == 0)
                {
                    Assert.True(clock.Elapsed < StepTimeout, $"round {round}: no large transmit buffer came free");
                    Thread.Yield();
                }

                int length = UsoFrames.Write(packets[0].Span, net.MacAddress.Span, family, DriverPort, KernelPort, payload);
                packets[0] = packets[0].WithLength(length).WithOffload(TransmitOffloadRequest.Segmentation(DatagramSize));
                if (tx.TransmitBurst(packets.AsSpan(0, 1), out TransmitBurstStatus status) == 1)
                {
                    segmented++;
                    return;
                }

                // No HOST_USO: refused as it stands, the buffer still the caller's.
                Assert.Equal(TransmitBurstStatus.OffloadUnavailable, status);
                tx.FreeBurst(packets.AsSpan(0, 1));
                refused++;
            }

            // The caller cuts: each datagram written into a buffer of its own, the checksum asked of the driver.
            int sent = 0;
            while (sent < DatagramsPerRound)
            {
                Assert.True(clock.Elapsed < StepTimeout, $"round {round}: {sent} of {DatagramsPerRound} datagrams sent, the transmit queue stayed full");
                int lent = tx.AllocateBurst(packets.AsSpan(0, DatagramsPerRound - sent));
                for (int i = 0; i < lent; i++)
                {
                    int offset = (sent + i) * DatagramSize;
                    ReadOnlySpan<byte> datagram = payload.AsSpan(offset, Math.Min(DatagramSize, PayloadBytes - offset));
                    int length = UsoFrames.Write(packets[i].Span, net.MacAddress.Span, family, DriverPort, KernelPort, datagram);
                    packets[i] = packets[i].WithLength(length).WithOffload(TransmitOffloadRequest.Checksum);
                }

                int queued = tx.TransmitBurst(packets.AsSpan(0, lent), out TransmitBurstStatus status);
                Assert.True(status is TransmitBurstStatus.Complete or TransmitBurstStatus.RingFull, $"round {round}: the burst stopped with {status}");
                tx.FreeBurst(packets.AsSpan(queued, lent - queued));
                sent += queued;
                if (sent < DatagramsPerRound)
                {
                    Thread.Yield();
                }
            }
        });

        Assert.Equal(path == TransmitPath.DeviceUso ? Rounds : 0, segmented);
        Assert.Equal(path == TransmitPath.SoftwareUso ? Rounds : 0, refused);
    }

    // Sends Rounds payloads with send, one at a time (the next once the kernel socket has every datagram of this one),
    // then compares every datagram and counts what reached the TAP.
    private static async Task SendRoundsToKernel(TransmitPath path, AddressFamily family, Action<VirtioNetDevice, byte[], int> send)
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

        ulong negotiated = net.NegotiatedFeatures.Low;
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

        VirtioNetTransmitQueue tx = net.Pairs[0].TransmitQueue;
        int warmUps = WarmUp(tx, net.MacAddress.Span, family, pathUp, ns, ct);

        // The counted part starts once the TAP has taken every warm-up frame (one TAP packet each).
        Assert.True(SpinWait.SpinUntil(() => TapPackets(ns, "rx") - tapPacketsBefore >= warmUps, StepTimeout), "the warm-up frames never all reached the TAP");
        tapPacketsBefore += warmUps;
        long packetsBefore = net.Pairs[0].TransmitStatistics.Packets;
        for (int round = 0; round < Rounds; round++)
        {
            send(net, payloads[round], round);
            var clock = Stopwatch.StartNew();

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
        long sent = net.Pairs[0].TransmitStatistics.Packets - packetsBefore;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{path} {family}: driver sent {sent} packets ({net.Pairs[0].TransmitStatistics.Bytes} bytes), the TAP took {tapPackets}, the kernel socket received {datagrams.Count} datagrams; negotiated {string.Join(' ', VirtioNetFeatureNames.Describe(negotiated & VirtioNetOptions.OffloadFeatures))}");
        Assert.Equal(path == TransmitPath.DeviceUso ? Rounds : Rounds * DatagramsPerRound, sent);
        Assert.Equal(sent, tapPackets);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
    }

    [Theory]
    [MemberData(nameof(ReceiveCases))]
    public async Task UdpGsoFromAKernelSocketReachesTheDriverAsLargeFramesWithTheSegmentSize(AddressFamily family, string properties)
    {
        byte[]? buffer = null;
        await ReceiveRoundsFromKernel(family, properties, (rx, round, handle) =>
        {
            buffer ??= new byte[rx.MaxReceiveFrameLength];
            if (!rx.TryReceive(buffer, out int length, out ReceivedFrameInfo info))
            {
                return false;
            }

            handle(buffer.AsSpan(0, length), info, 1);
            return true;
        });
    }

    /// <summary>
    /// As <see cref="UdpGsoFromAKernelSocketReachesTheDriverAsLargeFramesWithTheSegmentSize"/>, through
    /// ReceiveBurst/ReleaseBurst: each 60 KB frame arrives in one packet (several mergeable buffers, or one big-mode
    /// chain) with GSO_UDP_L4, the segment size and its partial checksum, completed by the driver on even rounds
    /// (<see cref="ReceiveBurstOptions.CompletePartialChecksums"/>) and handed out Partial, with where, on odd ones.
    /// </summary>
    [Theory]
    [MemberData(nameof(ReceiveCases))]
    public async Task UdpGsoFromAKernelSocketArrivesThroughReceiveBurstWithItsOffloadMetadata(AddressFamily family, string properties)
    {
        var burst = new ReceivedPacket[512];
        ReceivedUdp received = await ReceiveRoundsFromKernel(family, properties, (rx, round, handle) =>
        {
            int count = rx.ReceiveBurst(burst, round % 2 == 0 ? ReceiveBurstOptions.CompletePartialChecksums : ReceiveBurstOptions.None);
            for (int i = 0; i < count;)
            {
                byte[] frame = BurstPackets.Join(burst.AsSpan(0, count), i, out int buffers);
                handle(frame, burst[i].Offload, buffers);
                i += buffers;
            }

            rx.ReleaseBurst(burst.AsSpan(0, count));
            return count > 0;
        });

        if (!properties.Contains("guest_uso4=off", StringComparison.Ordinal))
        {
            // Odd rounds left the partial checksum to the caller, even ones had the driver complete it.
            Assert.Equal(Rounds / 2, received.PartialChecksumsCompletedHere);
            Assert.Equal(Rounds / 2, received.Checksums.GetValueOrDefault(ReceivedChecksumState.Completed));
            Assert.Equal(properties.Contains("mrg_rxbuf=off", StringComparison.Ordinal) ? 0 : Rounds, received.MultiBufferFrames);
        }
    }

    // The kernel sends Rounds payloads of PayloadBytes with UDP_SEGMENT, one at a time; poll takes what arrived (false
    // when nothing) and hands each frame to the handler, which checks it and reassembles the round's payload.
    private static async Task<ReceivedUdp> ReceiveRoundsFromKernel(AddressFamily family, string properties, Func<VirtioNetQueuePair, int, UdpFrameHandler, bool> poll)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        bool guestUso = !properties.Contains("guest_uso4=off", StringComparison.Ordinal);
        using var ns = NetworkNamespaceForTest(out string qemu);
        using RiscvVirtBoard board = StartBoard(ns, qemu, properties);
        using VirtioNetDevice net = Open(board, ns);

        ulong guestUsoBits = VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;
        Assert.Equal(guestUso ? guestUsoBits : 0, net.NegotiatedFeatures & guestUsoBits);
        Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.GuestCsum);
        Assert.True(net.Pairs[0].MaxReceiveFrameLength >= EthernetFrame.HeaderLength + 40 + 8 + PayloadBytes, $"receive frames are limited to {net.Pairs[0].MaxReceiveFrameLength} bytes");

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

        var received = new ReceivedUdp(family, net.Mtu);
        VirtioNetQueuePair rx = net.Pairs[0];
        for (int round = 0; round < Rounds; round++)
        {
            go.Release();
            received.StartRound(round);
            var clock = Stopwatch.StartNew();
            while (received.Filled < PayloadBytes)
            {
                Assert.True(clock.Elapsed < StepTimeout, $"round {round}: {received.Filled} of {PayloadBytes} bytes arrived ({received.Frames} frames so far)");
                if (!poll(rx, round, received.Handle))
                {
                    Thread.Yield();
                }
            }

            Assert.True(payloads[round].AsSpan().SequenceEqual(received.Payload), $"round {round}: the payload differs from what the kernel sent");
        }

        Assert.Equal(Rounds, await kernel.WaitAsync(StepTimeout, ct));
        long tapPackets = TapPackets(ns, "tx") - tapPacketsBefore;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{family} {properties}: {received.Frames} frames ({received.MultiBufferFrames} in several buffers), {received.GsoFrames} GSO (sizes {string.Join(',', received.GsoSizes)}), {received.FramesAboveMtu} above the MTU, longest {received.Longest}; the TAP sent {tapPackets}; checksums {string.Join(", ", received.Checksums.Select(p => $"{p.Key} {p.Value}"))}, {received.PartialChecksumsCompletedHere} completed by the test; receive errors {net.Pairs[0].ReceiveStatistics.Errors}; mode {net.ReceiveMode}");
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        if (guestUso)
        {
            // The kernel left each 60 KB send whole: one GSO_UDP_L4 frame per send, gso_size the UDP_SEGMENT value.
            Assert.Equal(Rounds, received.Frames);
            Assert.Equal(Rounds, received.GsoFrames);
            Assert.Equal(Rounds, received.FramesAboveMtu);
            Assert.Equal([DatagramSize], received.GsoSizes);
        }
        else
        {
            // Without GUEST_USO the kernel cuts before the TAP: whole datagrams, none above the MTU, none GSO.
            Assert.Equal(Rounds * DatagramsPerRound, received.Frames);
            Assert.Equal(0, received.GsoFrames);
            Assert.Equal(0, received.FramesAboveMtu);
        }

        return received;
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
        VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Poll });
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

    // One received frame (buffers receive buffers joined) and what the driver said of it.
    private delegate void UdpFrameHandler(Span<byte> frame, ReceivedFrameInfo info, int buffers);

    // The datagrams of one round from the kernel, checked frame by frame and reassembled, with what was seen counted.
    private sealed class ReceivedUdp(AddressFamily family, int mtu)
    {
        private int _round;

        public byte[] Payload { get; } = new byte[PayloadBytes];

        public int Filled { get; private set; }

        public int Frames { get; private set; }

        public int MultiBufferFrames { get; private set; }

        public int GsoFrames { get; private set; }

        public int FramesAboveMtu { get; private set; }

        public int Longest { get; private set; }

        public int PartialChecksumsCompletedHere { get; private set; }

        public HashSet<int> GsoSizes { get; } = [];

        public Dictionary<ReceivedChecksumState, int> Checksums { get; } = [];

        public void StartRound(int round)
        {
            _round = round;
            Filled = 0;
        }

        public void Handle(Span<byte> frame, ReceivedFrameInfo info, int buffers)
        {
            if (!PacketLayout.TryParse(frame, out PacketLayout layout) || layout.IsTcp || layout.IsIPv6 != (family == AddressFamily.InterNetworkV6) ||
                System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(frame[(layout.TransportOffset + 2)..]) != DriverPort)
            {
                return;   // IPv6 neighbour discovery, MLD and the like from the kernel.
            }

            Frames++;
            MultiBufferFrames += buffers > 1 ? 1 : 0;
            Longest = Math.Max(Longest, frame.Length);
            FramesAboveMtu += frame.Length > mtu + EthernetFrame.HeaderLength ? 1 : 0;
            Checksums[info.Checksum] = Checksums.GetValueOrDefault(info.Checksum) + 1;
            if (info.IsGso)
            {
                GsoFrames++;
                GsoSizes.Add(info.GsoSize);
                Assert.Equal(VirtioNetGsoType.UdpL4, info.GsoType);
            }

            if (info.Checksum == ReceivedChecksumState.Partial)
            {
                // Left to the caller: the metadata must point at the UDP checksum field, and completing it there must
                // give the checksum the kernel would have.
                Assert.Equal(layout.TransportOffset, info.ChecksumStart);
                Assert.Equal(layout.ChecksumFieldOffset, info.ChecksumOffset);
                InternetChecksum.CompletePartial(frame[..layout.PacketEnd], info.ChecksumStart, info.ChecksumOffset);
                PartialChecksumsCompletedHere++;
            }

            // The checksum covers the whole (coalesced) datagram as the kernel summed it.
            Assert.True(ReceiveOffload.IsTransportChecksumValid(frame, layout), $"round {_round}: a {frame.Length}-byte frame's UDP checksum is wrong after the driver's checks ({info.Checksum})");
            ReadOnlySpan<byte> payload = frame[layout.HeaderLength..layout.PacketEnd];
            Assert.True(Filled + payload.Length <= PayloadBytes, $"round {_round}: {Filled + payload.Length} bytes, more than were sent");
            payload.CopyTo(Payload.AsSpan(Filled));
            Filled += payload.Length;
        }
    }
}
