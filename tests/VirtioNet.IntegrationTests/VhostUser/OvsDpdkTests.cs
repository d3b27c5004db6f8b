using System.Buffers.Binary;
using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Vlan;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// Two VirtioNet devices on two vhost-user ports of one Open vSwitch bridge (a private ovs-vswitchd-dpdk, netdev
/// datapath, see <see cref="OvsDpdkSwitch"/>): frames go from one driver through OVS's datapath to the other, so each
/// driver's transmit path is checked by the other's receive path, and OVS's own counters and OpenFlow rules are the
/// referee. Port A is always a <c>dpdkvhostuserclient</c> port (OVS connects to the driver's socket); the driver of port
/// A takes OVS's packed ring, the driver of port B the split ring.
/// </summary>
[Trait("Peer", "Ovs")]
[Collection(VhostUserCollection.Name)]
public sealed class OvsDpdkTests
{
    private static readonly byte[] MacA = [0x02, 0x00, 0x5e, 0x0a, 0x00, 0x01];
    private static readonly byte[] MacB = [0x02, 0x00, 0x5e, 0x0b, 0x00, 0x02];
    private static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

    // IEEE 802 local experimental EtherTypes: OVS's NORMAL action forwards them without looking further.
    private const ushort EtherTypeOne = 0x88b5;
    private const ushort EtherTypeTwo = 0x88b6;

    // Sequence-number spaces, so that a receiver knows which frame it holds.
    private const uint FromA = 0x0000_0000;
    private const uint FromB = 0x8000_0000;
    private const uint Learning = 0x4000_0000;
    private const uint BroadcastFrames = 0x2000_0000;
    private const uint OtherVlan = 0x1000_0000;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ThousandsOfFramesEachWayArriveIntactAndOvsCountsWhatTheDriversCount(bool portBIsServer)
    {
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        using Pair pair = Pair.Open(ovs, portBIsServer);
        VirtioNetDevice a = pair.A.Device;
        VirtioNetDevice b = pair.B.Device;
        Assert.NotEqual(0UL, a.NegotiatedFeatures & VirtioFeatures.RingPacked);
        Assert.Equal(0UL, b.NegotiatedFeatures & VirtioFeatures.RingPacked);

        // Unicast both ways at once, 60 to 1514 bytes, at most 64 frames in flight per direction.
        const int Count = 3000;
        var toB = new Dictionary<uint, byte[]>();
        var toA = new Dictionary<uint, byte[]>();
        int sentToB = 0, sentToA = 0, receivedByB = 0, receivedByA = 0;
        byte[] buffer = new byte[Math.Max(a.Pairs[0].MaxReceiveFrameLength, b.Pairs[0].MaxReceiveFrameLength)];
        var clock = Stopwatch.StartNew();
        while ((receivedByA < Count || receivedByB < Count) && clock.Elapsed < Patience)
        {
            sentToB += SendWindow(a, MacB, MacA, FromA, sentToB, receivedByB, Count, toB);
            sentToA += SendWindow(b, MacA, MacB, FromB, sentToA, receivedByA, Count, toA);
            receivedByB += ReceiveAndVerify(b, buffer, toB);
            receivedByA += ReceiveAndVerify(a, buffer, toA);
            Thread.Yield();
        }

        Assert.True(receivedByB == Count && receivedByA == Count, $"B got {receivedByB} and A got {receivedByA} of {Count} frames.\n{ovs.Log}");

        // A broadcast reaches the other port (and only the other one: OVS never floods back to the ingress port).
        for (uint i = 0; i < 10; i++)
        {
            byte[] fromA = BuildFrame(Broadcast, MacA, EtherTypeOne, BroadcastFrames | FromA | i, 100 + (int)i);
            byte[] fromB = BuildFrame(Broadcast, MacB, EtherTypeOne, BroadcastFrames | FromB | i, 1000 + (int)i);
            toB.Add(BroadcastFrames | FromA | i, fromA);
            toA.Add(BroadcastFrames | FromB | i, fromB);
            Assert.True(a.Pairs[0].TrySend(fromA));
            Assert.True(b.Pairs[0].TrySend(fromB));
        }

        clock.Restart();
        int broadcastsAtB = 0, broadcastsAtA = 0;
        while ((broadcastsAtA < 10 || broadcastsAtB < 10) && clock.Elapsed < Patience)
        {
            a.Pairs[0].Reclaim();
            b.Pairs[0].Reclaim();
            broadcastsAtB += ReceiveAndVerify(b, buffer, toB);
            broadcastsAtA += ReceiveAndVerify(a, buffer, toA);
            Thread.Yield();
        }

        Assert.Equal(10, broadcastsAtB);
        Assert.Equal(10, broadcastsAtA);
        Assert.Empty(toA);
        Assert.Empty(toB);

        // OVS's counters, read live from the datapath, agree with the drivers': what OVS took from a driver's transmit
        // ring is what that driver sent, and what OVS put into its receive ring is what it received; nothing dropped.
        // (OVS 3.1 has no counters for a dpdkvhostuser port: see OvsDpdkSwitch.GetPortStatistics.)
        OvsPortStatistics portA = WaitForCounters(ovs, "vu0", a);
        Assert.Equal((0L, 0L), (portA.RxDropped, portA.TxDropped));
        if (portBIsServer)
        {
            Assert.Null(ovs.GetPortStatistics("vu1"));
        }
        else
        {
            OvsPortStatistics portB = WaitForCounters(ovs, "vu1", b);
            Assert.Equal((0L, 0L), (portB.RxDropped, portB.TxDropped));
        }

        Assert.Equal(0, a.Pairs[0].ReceiveStatistics.Drops + a.Pairs[0].ReceiveStatistics.Errors + b.Pairs[0].ReceiveStatistics.Drops + b.Pairs[0].ReceiveStatistics.Errors);
        Assert.All(a.GetQueueStates().Concat(b.GetQueueStates()), q => Assert.Null(q.BrokenReason));
    }

    [Fact]
    public void AnOpenFlowRuleDropsOneEtherTypeAndOvsCountsTheDrops()
    {
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        using Pair pair = Pair.Open(ovs, portBIsServer: false);
        VirtioNetDevice a = pair.A.Device;
        VirtioNetDevice b = pair.B.Device;
        ovs.AddFlow($"priority=100,dl_type=0x{EtherTypeTwo:x4},actions=drop");

        // Every other frame carries the dropped EtherType; only the others reach B.
        const int Count = 1000;
        var expected = new Dictionary<uint, byte[]>();
        byte[] buffer = new byte[b.Pairs[0].MaxReceiveFrameLength];
        int received = 0;
        int next = 0;
        var clock = Stopwatch.StartNew();
        while ((next < Count || received < Count / 2) && clock.Elapsed < Patience)
        {
            while (next < Count && expected.Count < 64)
            {
                ushort etherType = next % 2 == 0 ? EtherTypeOne : EtherTypeTwo;
                byte[] frame = BuildFrame(MacB, MacA, etherType, FromA | (uint)next, 60 + (next * 131 % 1455));
                if (!a.Pairs[0].TrySend(frame))
                {
                    break;
                }

                if (etherType == EtherTypeOne)
                {
                    expected.Add(FromA | (uint)next, frame);
                }

                next++;
            }

            a.Pairs[0].Reclaim();
            received += ReceiveAndVerify(b, buffer, expected);
            Thread.Yield();
        }

        Assert.True(received == Count / 2, $"B got {received} of the {Count / 2} frames the rule lets through.\n{ovs.Log}");

        // Nothing else arrives: give a dropped frame that would have been delivered late the time to show up.
        Thread.Sleep(200);
        Assert.Equal(0, ReceiveAndVerify(b, buffer, expected));

        // The rule counted every dropped frame.
        int dropped = ovs.FlowPacketsEventually($"dl_type=0x{EtherTypeTwo:x4}", Count / 2, Patience);
        Assert.Equal(Count / 2, dropped);
        WaitForCounters(ovs, "vu0", a);
        WaitForCounters(ovs, "vu1", b);
    }

    [Fact]
    public void OpenFlowPushesAVlanTagTheDriverStripsAndStripsTheTagTheDriverInserted()
    {
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        using Pair pair = Pair.Open(ovs, portBIsServer: false);
        VirtioNetDevice a = pair.A.Device;
        VirtioNetDevice b = pair.B.Device;

        // A to B: OVS pushes VLAN 100, priority 5. B to A: OVS removes VLAN 200. Any other VLAN is NORMAL-forwarded as is.
        ovs.AddFlow("priority=100,in_port=vu0,dl_type=0x88b5,actions=mod_vlan_vid:100,mod_vlan_pcp:5,output:vu1");
        ovs.AddFlow("priority=100,in_port=vu1,dl_vlan=200,actions=strip_vlan,output:vu0");

        byte[] buffer = new byte[Math.Max(a.Pairs[0].MaxReceiveFrameLength, b.Pairs[0].MaxReceiveFrameLength)];
        for (uint i = 0; i < 200; i++)
        {
            int length = 60 + (int)(i * 977 % 1455);

            // Tagged by OVS on the way to B: B's driver reports the tag and hands over the frame as A sent it.
            byte[] frame = BuildFrame(MacB, MacA, EtherTypeOne, FromA | i, length);
            Assert.True(a.Pairs[0].TrySend(frame));
            Assert.True(WaitForFrame(b, buffer, out int received, out VlanTag? tag), $"frame {i} did not reach B.\n{ovs.Log}");
            Assert.Equal(new VlanTag(100, 5), tag);
            Assert.True(buffer.AsSpan(0, received).SequenceEqual(frame), $"frame {i} reached B changed ({received} bytes, sent {frame.Length}).");

            // Tagged by B's driver (VLAN 200, priority 3), untagged by OVS: A receives the frame B was given.
            byte[] back = BuildFrame(MacA, MacB, EtherTypeOne, FromB | i, length);
            Assert.True(b.Pairs[0].TrySend(back, new VlanTag(200, 3)));
            Assert.True(WaitForFrame(a, buffer, out received, out tag), $"frame {i} did not reach A.\n{ovs.Log}");
            Assert.Null(tag);
            Assert.True(buffer.AsSpan(0, received).SequenceEqual(back), $"frame {i} reached A changed ({received} bytes, sent {back.Length}).");

            // A tag no rule matches crosses the NORMAL pipeline (trunk ports) unchanged: A's driver strips and reports it.
            byte[] other = BuildFrame(MacA, MacB, EtherTypeTwo, FromB | OtherVlan | i, length);
            Assert.True(b.Pairs[0].TrySend(other, new VlanTag(201, 1, dropEligible: i % 2 == 0)));
            Assert.True(WaitForFrame(a, buffer, out received, out tag), $"VLAN 201 frame {i} did not reach A.\n{ovs.Log}");
            Assert.Equal(new VlanTag(201, 1, dropEligible: i % 2 == 0), tag);
            Assert.True(buffer.AsSpan(0, received).SequenceEqual(other), $"VLAN 201 frame {i} reached A changed.");
        }

        // Each rule counted its 200 frames; the ports' counters agree with the drivers' (the 4 tag bytes included:
        // OVS counts the frame it put into B's ring, tag and all, and the driver counts what it received, before stripping).
        Assert.Equal(200, ovs.FlowPacketsEventually("mod_vlan_vid:100", 200, Patience));
        Assert.Equal(200, ovs.FlowPacketsEventually("dl_vlan=200", 200, Patience));
        WaitForCounters(ovs, "vu0", a);
        WaitForCounters(ovs, "vu1", b);
    }

    [Fact]
    public void TwoQueuePairsOnEachPortCarryFramesBothWays()
    {
        // OVS sizes a vhost port's queues by what the driver enables: the transport's control queue turns the driver's
        // VQ_PAIRS_SET into SET_VRING_ENABLE on both pairs, and OVS then polls both receive queues of the port.
        using OvsDpdkSwitch ovs = OvsDpdkSwitch.Start();
        using Pair pair = Pair.Open(ovs, portBIsServer: false, queuePairs: 2);
        VirtioNetDevice a = pair.A.Device;
        VirtioNetDevice b = pair.B.Device;
        foreach (VhostUserNetDevice session in new[] { pair.A, pair.B })
        {
            Assert.True(session.Transport.ServesControlQueue);
            Assert.NotEqual(0UL, session.Device.NegotiatedFeatures & VirtioNetFeatures.Mq);
            Assert.Equal(2, session.Device.Control.ActiveQueuePairs);
            Assert.Equal(2, session.Transport.EnabledQueuePairs);
        }

        // Each driver sends on both of its pairs at once; the other receives on whichever pair OVS chose.
        const int PerPair = 1000;
        var toB = new Dictionary<uint, byte[]>();
        var toA = new Dictionary<uint, byte[]>();
        int[] sentToB = new int[2], sentToA = new int[2];
        int receivedByB = 0, receivedByA = 0;
        byte[] buffer = new byte[Math.Max(a.Pairs[0].MaxReceiveFrameLength, b.Pairs[0].MaxReceiveFrameLength)];
        var clock = Stopwatch.StartNew();
        while ((receivedByA < 2 * PerPair || receivedByB < 2 * PerPair) && clock.Elapsed < Patience)
        {
            for (int p = 0; p < 2; p++)
            {
                uint space = (uint)p << 16;

                // At most 64 frames in flight per direction, shared by the two pairs.
                sentToB[p] += SendWindow(a, p, MacB, MacA, FromA | space, sentToB[p], 32 - ((sentToB.Sum() - receivedByB) / 2), PerPair, toB, udp: true);
                sentToA[p] += SendWindow(b, p, MacA, MacB, FromB | space, sentToA[p], 32 - ((sentToA.Sum() - receivedByA) / 2), PerPair, toA, udp: true);
            }

            receivedByB += ReceiveAndVerify(b, buffer, toB);
            receivedByA += ReceiveAndVerify(a, buffer, toA);
            Thread.Yield();
        }

        Assert.True(receivedByB == 2 * PerPair && receivedByA == 2 * PerPair, $"B got {receivedByB} and A got {receivedByA} of {2 * PerPair} frames.\n{ovs.Log}");

        // Both transmit queues of each driver carried their share, and, OVS spreading the frames it sends to a port over
        // its queues by hash, both receive queues took some; OVS took from each port exactly what its driver sent.
        foreach (VirtioNetDevice device in new[] { a, b })
        {
            Assert.All(device.Pairs.Select(p => p.TransmitQueue), q => Assert.True(q.Statistics.Packets >= PerPair, $"{q.Statistics.Name} sent {q.Statistics.Packets}"));
            Assert.All(device.Pairs.Select(p => p.ReceiveQueue), q => Assert.True(q.Statistics.Packets > 0, $"{q.Statistics.Name} received nothing: [{string.Join(", ", device.Pairs.Select(p => p.ReceiveQueue).Select(r => r.Statistics.Packets))}]"));
        }

        WaitForCounters(ovs, "vu0", a);
        WaitForCounters(ovs, "vu1", b);
        Assert.All(a.GetQueueStates().Concat(b.GetQueueStates()), q => Assert.Null(q.BrokenReason));
    }

    // Sends frames of the direction's sequence space while fewer than 64 are in flight; returns how many it sent.
    private static int SendWindow(VirtioNetDevice device, byte[] destination, byte[] source, uint space, int sent, int received, int count, Dictionary<uint, byte[]> expected) =>
        SendWindow(device, 0, destination, source, space, sent, 64 - (sent - received), count, expected);

    // Sends at most limit frames on one pair, numbered from sent up to count; returns how many it sent.
    private static int SendWindow(VirtioNetDevice device, int pair, byte[] destination, byte[] source, uint space, int sent, int limit, int count, Dictionary<uint, byte[]> expected, bool udp = false)
    {
        int added = 0;
        while (sent + added < count && added < limit)
        {
            uint sequence = space | (uint)(sent + added);
            int length = 60 + (int)((uint)(sent + added) * 97 % 1455);
            byte[] frame = udp ? BuildUdpFrame(destination, source, sequence, length) : BuildFrame(destination, source, EtherTypeOne, sequence, length);
            if (!device.Pairs[pair].TrySend(frame))
            {
                break;
            }

            expected.Add(sequence, frame);
            added++;
        }

        device.Pairs[pair].Reclaim();
        return added;
    }

    // Takes every frame waiting at the device; each must be one expected (byte for byte), or a learning frame.
    private static int ReceiveAndVerify(VirtioNetDevice device, byte[] buffer, Dictionary<uint, byte[]> expected)
    {
        int count = 0;
        for (int pair = 0; pair < device.Control.ActiveQueuePairs; pair++)
        {
            count += ReceiveAndVerify(device, pair, buffer, expected);
        }

        return count;
    }

    // The same on one pair.
    private static int ReceiveAndVerify(VirtioNetDevice device, int pair, byte[] buffer, Dictionary<uint, byte[]> expected)
    {
        int count = 0;
        while (device.Pairs[pair].TryReceive(buffer, out int length))
        {
            Assert.True(length >= 60, $"a {length}-byte frame arrived; none that short was sent");
            uint sequence = SequenceOf(buffer, length);
            if (IsLearningFrame(buffer, length))
            {
                continue;
            }

            Assert.True(expected.Remove(sequence, out byte[]? frame), $"frame 0x{sequence:x8} ({length} bytes) arrived but was not sent this way, or arrived twice");
            Assert.True(buffer.AsSpan(0, length).SequenceEqual(frame), $"frame 0x{sequence:x8} arrived with {length} bytes, different from the {frame.Length} sent");
            count++;
        }

        return count;
    }

    private static bool WaitForFrame(VirtioNetDevice device, byte[] buffer, out int length, out VlanTag? tag)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            device.Pairs[0].Reclaim();
            if (device.Pairs[0].TryReceive(buffer, out length, out tag) && !(tag is null && IsLearningFrame(buffer, length)))
            {
                return true;
            }

            Thread.Yield();
        }

        length = 0;
        tag = null;
        return false;
    }

    // A frame Pair.Learn sent that arrived after Learn stopped looking.
    private static bool IsLearningFrame(byte[] frame, int length) =>
        length >= 18 && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == EtherTypeOne
        && (BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(14)) & 0xf000_0000) == Learning;

    // Waits until OVS's live port counters equal the driver's (OVS updates them right after each burst), then returns them.
    private static OvsPortStatistics WaitForCounters(OvsDpdkSwitch ovs, string port, VirtioNetDevice device)
    {
        var clock = Stopwatch.StartNew();
        OvsPortStatistics stats;
        while (true)
        {
            OvsPortStatistics? read = ovs.GetPortStatistics(port);
            Assert.True(read.HasValue, $"OVS has no counters for {port}");
            stats = read.Value;
            bool agree = (stats.RxPackets, stats.RxBytes) == Sent(device) && (stats.TxPackets, stats.TxBytes) == Received(device);
            if (agree || clock.Elapsed > TimeSpan.FromSeconds(10))
            {
                break;
            }

            Thread.Sleep(50);
        }

        Assert.Equal(Sent(device), (stats.RxPackets, stats.RxBytes));
        Assert.Equal(Received(device), (stats.TxPackets, stats.TxBytes));
        return stats;
    }

    // Packets and bytes over every transmit (receive) queue of the device.
    private static (long Packets, long Bytes) Sent(VirtioNetDevice device) =>
        (device.Pairs.Select(p => p.TransmitQueue).Sum(q => q.Statistics.Packets), device.Pairs.Select(p => p.TransmitQueue).Sum(q => q.Statistics.Bytes));

    private static (long Packets, long Bytes) Received(VirtioNetDevice device) =>
        (device.Pairs.Select(p => p.ReceiveQueue).Sum(q => q.Statistics.Packets), device.Pairs.Select(p => p.ReceiveQueue).Sum(q => q.Statistics.Bytes));

    // The sequence number: after the UDP header in an IPv4 frame, after the EtherType otherwise.
    private static uint SequenceOf(byte[] frame, int length) =>
        BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == 0x0800 ? 42 : 14, 4));

    // An IPv4/UDP frame from 10.0.0.1 to 10.0.0.2 whose UDP source port varies with the sequence number (which follows
    // the UDP header), so that OVS's 5-tuple hash spreads such frames over a port's queues (tx-steering=hash).
    private static byte[] BuildUdpFrame(byte[] destination, byte[] source, uint sequence, int length)
    {
        byte[] frame = BuildFrame(destination, source, 0x0800, sequence, length);
        Span<byte> ip = frame.AsSpan(14);
        ip[0] = 0x45;
        ip[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(length - 14));
        BinaryPrimitives.WriteUInt32BigEndian(ip[4..], 0x4000_0000); // id 0, don't fragment
        ip[8] = 64;
        ip[9] = 17;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], 0x0a00_0001);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], 0x0a00_0002);
        Span<byte> udp = frame.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(udp, (ushort)(1024 + (sequence & 0x3fff)));
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 4789);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(length - 34));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(42), sequence);

        // Header checksum (RFC 791): OVS does not check it, a reader of a capture would.
        uint sum = 0;
        for (int i = 0; i < 20; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(ip[i..]);
        }

        sum = (sum & 0xffff) + (sum >> 16);
        sum += sum >> 16;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~sum);
        return frame;
    }

    // destination, source, EtherType, a 4-byte sequence number, then a pattern of the sequence; length bytes in all.
    private static byte[] BuildFrame(byte[] destination, byte[] source, ushort etherType, uint sequence, int length)
    {
        byte[] frame = new byte[length];
        destination.CopyTo(frame, 0);
        source.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), etherType);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(14), sequence);
        for (int i = 18; i < length; i++)
        {
            frame[i] = (byte)(sequence * 7 + (uint)i);
        }

        return frame;
    }

    /// <summary>
    /// The two drivers on ports vu0 (dpdkvhostuserclient, packed ring) and vu1 (client or server port, split ring), both
    /// links up in OVS, and both MAC addresses learned by the bridge (one frame each way that arrived).
    /// </summary>
    private sealed class Pair : IDisposable
    {
        private Pair(VhostUserNetDevice a, VhostUserNetDevice b)
        {
            A = a;
            B = b;
        }

        public VhostUserNetDevice A { get; }

        public VhostUserNetDevice B { get; }

        public static Pair Open(OvsDpdkSwitch ovs, bool portBIsServer, int queuePairs = 1)
        {
            CancellationToken cancel = TestContext.Current.CancellationToken;
            // With several queues, OVS spreads what it sends to a port over the port's queues by the packets' hash
            // (by default everything goes to the one queue of its one PMD thread).
            string[] options = queuePairs > 1 ? ["other_config:tx-steering=hash"] : [];
            string socketA = ovs.AddClientPort("vu0", options);
            string socketB = portBIsServer ? ovs.AddServerPort("vu1", options) : ovs.AddClientPort("vu1", options);

            // OVS's vhost client retries its connection once a second.
            VhostUserNetDevice a = VhostUserNetDevice.Open(
                new VhostUserOptions { SocketPath = socketA, SocketMode = VhostUserSocketMode.Listen, ConnectTimeout = TimeSpan.FromSeconds(15), MacAddress = MacA, QueuePairs = queuePairs },
                new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = queuePairs },
                cancellationToken: cancel);
            VhostUserNetDevice? b = null;
            try
            {
                b = VhostUserNetDevice.Open(
                    new VhostUserOptions
                    {
                        SocketPath = socketB,
                        SocketMode = portBIsServer ? VhostUserSocketMode.Connect : VhostUserSocketMode.Listen,
                        ConnectTimeout = TimeSpan.FromSeconds(15),
                        MacAddress = MacB,
                        QueuePairs = queuePairs,
                    },
                    new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = queuePairs, DisabledFeatures = VirtioFeatures.RingPacked },
                    cancellationToken: cancel);
                var pair = new Pair(a, b);
                ovs.WaitForLinkUp("vu0", Patience);
                ovs.WaitForLinkUp("vu1", Patience);
                pair.Learn(ovs);
                return pair;
            }
            catch
            {
                b?.Dispose();
                a.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            B.Dispose();
            A.Dispose();
        }

        // One learning frame each way until one arrives: until OVS has polled both new ports, a frame can be lost.
        private void Learn(OvsDpdkSwitch ovs)
        {
            byte[] buffer = new byte[Math.Max(A.Device.Pairs[0].MaxReceiveFrameLength, B.Device.Pairs[0].MaxReceiveFrameLength)];
            foreach ((VirtioNetDevice from, VirtioNetDevice to, byte[] destination, byte[] source) in new[] { (A.Device, B.Device, MacB, MacA), (B.Device, A.Device, MacA, MacB) })
            {
                // From every pair: OVS polls a new receive queue only once it has reconfigured the port for it.
                for (int pair = 0; pair < from.Control.ActiveQueuePairs; pair++)
                {
                    bool arrived = false;
                    for (uint attempt = 0; attempt < 50 && !arrived; attempt++)
                    {
                        Assert.True(from.Pairs[pair].TrySend(BuildFrame(destination, source, EtherTypeOne, Learning | attempt, 60)));
                        var clock = Stopwatch.StartNew();
                        while (!arrived && clock.Elapsed < TimeSpan.FromMilliseconds(200))
                        {
                            from.Pairs[pair].Reclaim();
                            for (int toPair = 0; toPair < to.Control.ActiveQueuePairs; toPair++)
                            {
                                while (to.Pairs[toPair].TryReceive(buffer, out int length))
                                {
                                    arrived |= IsLearningFrame(buffer, length);
                                }
                            }

                            Thread.Yield();
                        }
                    }

                    Assert.True(arrived, $"no frame from pair {pair} crossed the bridge.\n{ovs.Log}");
                }
            }
        }
    }
}
