using System.Buffers.Binary;
using System.Net.NetworkInformation;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Net.Filtering;
using VirtioNet.Net.Vlan;
using VirtioNet.Qemu;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// Receive filtering by QEMU's virtio-net, driven through the control queue, frame by frame: the test plays the wire
/// (UDP socket netdev) and injects exact frames, each followed by a marker frame that is sure to pass, so a frame that
/// did not arrive before its marker was dropped by the device (QEMU delivers frames in order).
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class FilteringTests
{
    private static readonly byte[] OtherUnicast = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    private static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    private static readonly byte[] MulticastA = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    private static readonly byte[] MulticastB = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfc];

    private static int _sequence;

    private static (RiscvVirtBoard Board, UdpWire Wire, VirtioNetDevice Net) Start(bool modern, VirtioNetOptions? options = null)
    {
        QemuRequirement.EnsureAvailable();
        var wire = new UdpWire();
        RiscvVirtBoard? board = null;
        try
        {
            board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = modern, Netdev = wire.Netdev }, TestContext.Current.CancellationToken);
            VirtioNetDevice net = board.OpenNetDevice(null, options ?? new VirtioNetOptions { OperationMode = OperationMode.Poll });
            Assert.NotNull(net.Control.Queue);
            return (board, wire, net);
        }
        catch
        {
            board?.Dispose();
            wire.Dispose();
            throw;
        }
    }

    /// <summary>An Ethernet frame to <paramref name="destination"/> with a unique payload; optionally 802.1Q-tagged.</summary>
    private static byte[] Frame(ReadOnlySpan<byte> destination, VlanTag? tag = null)
    {
        byte[] frame = new byte[80];
        new Random(Interlocked.Increment(ref _sequence)).NextBytes(frame);
        destination.CopyTo(frame);
        frame[6] = 0x02;                               // a locally administered unicast source
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x88b5);
        if (tag is { } t)
        {
            byte[] tagged = new byte[frame.Length + 4];
            VlanFrame.InsertTag(frame, t, tagged);
            return tagged;
        }

        return frame;
    }

    /// <summary>
    /// Injects <paramref name="frame"/>, then a marker to <paramref name="markerDestination"/> (the device's own MAC unless
    /// given); returns whether <paramref name="frame"/> arrived before the marker, checking it arrived intact.
    /// </summary>
    private static bool Arrives(VirtioNetDevice net, UdpWire wire, byte[] frame, byte[]? markerDestination = null)
    {
        byte[] marker = Frame(markerDestination ?? net.MacAddress.ToArray());
        wire.Inject(frame);
        wire.Inject(marker);
        bool seen = false;
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        while (true)
        {
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken), "the marker frame never arrived");
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            byte[] got = received.AsSpan(0, length).ToArray();
            if (got.AsSpan().SequenceEqual(marker))
            {
                return seen;
            }

            Assert.Equal(frame, got);
            seen = true;
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QemuStartsPromiscuousAndTurningItOffDropsFramesForOtherMacs(bool modern)
    {
        var (board, wire, net) = Start(modern);
        using (board)
        using (wire)
        using (net)
        {
            // Verified against QEMU: after reset the device accepts everything until the driver says otherwise.
            Assert.True(Arrives(net, wire, Frame(OtherUnicast)));

            net.Control.SetPromiscuous(false);
            Assert.False(Arrives(net, wire, Frame(OtherUnicast)));
            Assert.True(Arrives(net, wire, Frame(net.MacAddress.Span)));
            Assert.True(Arrives(net, wire, Frame(Broadcast)));
            Assert.False(Arrives(net, wire, Frame(MulticastA)));

            net.Control.SetPromiscuous(true);
            Assert.True(Arrives(net, wire, Frame(OtherUnicast)));
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        }
    }

    [Fact]
    public void TheMacTableAdmitsListedAddressesAndDropsOthers()
    {
        var (board, wire, net) = Start(modern: true);
        using (board)
        using (wire)
        using (net)
        {
            net.Control.SetPromiscuous(false);
            byte[] listedUnicast = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
            byte[] unlistedUnicast = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
            MacFilterPlan plan = net.Control.SetMacFilter([new PhysicalAddress(listedUnicast)], [new PhysicalAddress(MulticastA)]);
            Assert.Equal(ReceiveFilterFlags.None, plan.FallbackFlags);

            Assert.True(Arrives(net, wire, Frame(listedUnicast)));
            Assert.False(Arrives(net, wire, Frame(unlistedUnicast)));
            Assert.True(Arrives(net, wire, Frame(MulticastA)));
            Assert.False(Arrives(net, wire, Frame(MulticastB)));

            // All-multicast admits every group; the unicast table still applies.
            net.Control.SetAllMulticast(true);
            Assert.True(Arrives(net, wire, Frame(MulticastB)));
            Assert.False(Arrives(net, wire, Frame(unlistedUnicast)));

            // An empty table drops the once-listed addresses again.
            net.Control.SetAllMulticast(false);
            net.Control.SetMacFilter([], []);
            Assert.False(Arrives(net, wire, Frame(listedUnicast)));
            Assert.False(Arrives(net, wire, Frame(MulticastA)));
        }
    }

    [Fact]
    public void AnOverflowingUnicastListFallsBackToAllUnicast()
    {
        var (board, wire, net) = Start(modern: true, new VirtioNetOptions { OperationMode = OperationMode.Poll, MacFilterCapacity = 2 });
        using (board)
        using (wire)
        using (net)
        {
            net.Control.SetPromiscuous(false);
            Assert.False(Arrives(net, wire, Frame(OtherUnicast)));

            PhysicalAddress[] three = [.. Enumerable.Range(1, 3).Select(i => new PhysicalAddress([0x02, 0, 0, 0, 0, (byte)i]))];
            MacFilterPlan plan = net.Control.SetMacFilter(three, [new PhysicalAddress(MulticastA)]);
            Assert.True(plan.UnicastOverflow);
            Assert.Equal(ReceiveFilterFlags.AllUnicast, net.Control.ReceiveFilter);

            // Every unicast frame passes now, while multicast is still filtered by the table.
            Assert.True(Arrives(net, wire, Frame(OtherUnicast)));
            Assert.True(Arrives(net, wire, Frame(MulticastA)));
            Assert.False(Arrives(net, wire, Frame(MulticastB)));
        }
    }

    [Fact]
    public void NoBroadcastDropsBroadcastFramesAndNoMulticastDropsListedGroups()
    {
        var (board, wire, net) = Start(modern: true);
        using (board)
        using (wire)
        using (net)
        {
            net.Control.SetReceiveMode(ReceiveFilterFlags.NoBroadcast);
            net.Control.SetMacFilter([], [new PhysicalAddress(MulticastA)]);
            Assert.False(Arrives(net, wire, Frame(Broadcast)));
            Assert.True(Arrives(net, wire, Frame(MulticastA)));

            net.Control.SetReceiveMode(ReceiveFilterFlags.NoMulticast);
            Assert.True(Arrives(net, wire, Frame(Broadcast)));
            Assert.False(Arrives(net, wire, Frame(MulticastA)));

            // No-unicast drops even the device's own address; the marker has to be broadcast then.
            net.Control.SetReceiveMode(ReceiveFilterFlags.NoUnicast);
            Assert.False(Arrives(net, wire, Frame(net.MacAddress.Span), markerDestination: Broadcast));
            net.Control.SetReceiveMode(ReceiveFilterFlags.None);
            Assert.True(Arrives(net, wire, Frame(net.MacAddress.Span), markerDestination: Broadcast));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SettingTheMacAddressChangesWhichUnicastFramesArriveAndWhatTheDeviceReports(bool modern)
    {
        var (board, wire, net) = Start(modern);
        using (board)
        using (wire)
        using (net)
        {
            byte[] original = net.MacAddress.ToArray();
            byte[] updated = [0x02, 0x12, 0x34, 0x56, 0x78, 0x9a];
            net.Control.SetPromiscuous(false);
            net.Control.SetMacAddress(new PhysicalAddress(updated));
            Assert.Equal(updated, net.MacAddress.ToArray());

            // The device's configuration space reports the new address (QEMU copies it into n->mac).
            byte[] reported = new byte[6];
            for (int i = 0; i < 6; i++)
            {
                reported[i] = board.Machine.Qtest.ReadB(board.Machine.NetDeviceBase + 0x100 + (ulong)i);
            }

            Assert.Equal(updated, reported);
            Assert.True(Arrives(net, wire, Frame(updated)));
            Assert.False(Arrives(net, wire, Frame(original)));

            // A frame the driver's user builds from MacAddress leaves with the new source, unchanged by QEMU.
            byte[] outgoing = Frame(Broadcast);
            net.MacAddress.Span.CopyTo(outgoing.AsSpan(6));
            Assert.True(net.Pairs[0].TrySend(outgoing));
            byte[]? seen = wire.Receive(TimeSpan.FromSeconds(5));
            Assert.Equal(outgoing, seen);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ATaggedFrameForAVlanNotInTheTableIsDroppedAndPassesOnceAdded(bool modern)
    {
        var (board, wire, net) = Start(modern);
        using (board)
        using (wire)
        using (net)
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.CtrlVlan);

            // QEMU applies the VLAN table only outside promiscuous mode.
            net.Control.SetPromiscuous(false);
            byte[] tagged = Frame(net.MacAddress.Span, new VlanTag(100, priority: 5));
            Assert.False(Arrives(net, wire, tagged));

            net.Control.AddVlan(100);
            Assert.Equal([100], net.Control.VlanIds);
            wire.Inject(tagged);
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length, out VlanTag? tag));
            Assert.Equal(new VlanTag(100, priority: 5), tag);
            byte[] untagged = [.. tagged.AsSpan(0, 12), .. tagged.AsSpan(16)];
            Assert.Equal(untagged, received.AsSpan(0, length).ToArray());

            // Other VLANs stay out; removing the id drops it again.
            Assert.False(Arrives(net, wire, Frame(net.MacAddress.Span, new VlanTag(101))));
            net.Control.RemoveVlan(100);
            Assert.False(Arrives(net, wire, tagged));

            ArgumentOutOfRangeException e = Assert.Throws<ArgumentOutOfRangeException>(() => net.Control.AddVlan(4096));
            Assert.Contains("4095", e.Message, StringComparison.Ordinal);
            Assert.True(net.Control.Queue!.IsUsable);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RuntAndOversizeFramesFromTheWireAreCountedAsErrorsAndDropped(bool modern)
    {
        // QEMU's virtio-net neither pads short frames nor enforces the MTU on receive (do_not_pad; mergeable buffers
        // hold anything), so what the test puts on the wire reaches the ring as it is: the driver must count and drop
        // frames shorter than an Ethernet header or longer than it can take, and go on with the next one.
        var (board, wire, net) = Start(modern);
        using (board)
        using (wire)
        using (net)
        {
            long errorsBefore = net.Pairs[0].ReceiveStatistics.Errors;
            int[] badLengths = [1, 6, 13, net.Pairs[0].MaxReceiveFrameLength + 1, 4000];
            foreach (int length in badLengths)
            {
                byte[] bad = new byte[length];
                bad.AsSpan().Fill(0xff);
                wire.Inject(bad);
            }

            byte[] good = Frame(Broadcast);
            wire.Inject(good);
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int got;
            while (!net.Pairs[0].TryReceive(received, out got))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "the good frame after the bad ones never arrived");
                net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken);
            }

            Assert.Equal(good, received.AsSpan(0, got).ToArray());
            Assert.Equal(badLengths.Length, net.Pairs[0].ReceiveStatistics.Errors - errorsBefore);
            Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
            Assert.True(Arrives(net, wire, Frame(Broadcast)));
        }
    }

    [Fact]
    public void TaggedSendsLeaveWithTheTagInPlace()
    {
        var (board, wire, net) = Start(modern: true);
        using (board)
        using (wire)
        using (net)
        {
            byte[] frame = Frame(Broadcast);
            Assert.True(net.Pairs[0].TrySend(frame, new VlanTag(7, priority: 6)));
            byte[]? seen = wire.Receive(TimeSpan.FromSeconds(5));
            Assert.NotNull(seen);
            Assert.True(VlanFrame.TryReadTag(seen, out VlanTag tag));
            Assert.Equal((7, 6), (tag.Id, tag.Priority));
            Assert.True(VlanFrame.TryStripTag(seen, out _, out int length));
            Assert.Equal(frame, seen.AsSpan(0, length).ToArray());
        }
    }
}
