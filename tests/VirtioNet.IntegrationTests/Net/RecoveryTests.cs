using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using VirtioNet.Core;
using VirtioNet.Diagnostics;
using VirtioNet.IntegrationTests.Qemu;
using VirtioNet.Net;
using VirtioNet.Qemu;
using VirtioNet.Transports.Pci;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// Error recovery against QEMU's virtio-net: the test corrupts receiveq1's descriptors in guest RAM (through the shared
/// mapping, as a stray write by a buggy guest would), so that the next frame QEMU tries to deliver makes it call
/// virtio_error() ("Desc next is 65535" on a split ring, "Looped descriptor" on a packed one), which on a modern
/// device sets DEVICE_NEEDS_RESET and raises a configuration interrupt. The driver notices (on that interrupt, or by
/// its periodic status read in poll mode), recovers on its own, and traffic and filter state are as before.
/// </summary>
[Trait("Peer", "Qemu")]
public sealed class RecoveryTests
{
    private const int Frames = 300;

    private static readonly byte[] OtherUnicast = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    private static readonly byte[] ListedUnicast = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

    private static int _sequence;

    public static TheoryData<string, bool, OperationMode, VirtioPciInterruptMode> Rows() => new()
    {
        { "mmio", false, OperationMode.Interrupt, VirtioPciInterruptMode.None },
        { "mmio", false, OperationMode.Poll, VirtioPciInterruptMode.None },
        { "mmio", true, OperationMode.Interrupt, VirtioPciInterruptMode.None },
        { "pci", false, OperationMode.Interrupt, VirtioPciInterruptMode.Intx },
        { "pci", false, OperationMode.Interrupt, VirtioPciInterruptMode.MsixPerQueue },
        { "pci", false, OperationMode.Poll, VirtioPciInterruptMode.None },
        { "pci", true, OperationMode.Interrupt, VirtioPciInterruptMode.MsixShared },
    };

    private static RiscvVirtBoard Start(string transport, bool packed, string netdev)
    {
        QemuRequirement.EnsureAvailable();
        var options = new QemuMachineOptions
        {
            ModernMmio = transport == "mmio",
            NetDeviceModel = transport switch
            {
                "pci" => QemuNetDeviceModel.VirtioPciModern,
                _ => QemuNetDeviceModel.VirtioMmio,
            },
            Netdev = netdev,
            NetDeviceProperties = $"packed={(packed ? "on" : "off")}",
        };
        return RiscvVirtBoard.Start(options, TestContext.Current.CancellationToken);
    }

    private static VirtioNetDevice Open(RiscvVirtBoard board, OperationMode mode, VirtioPciInterruptMode pciInterrupts)
    {
        board.PciInterruptMode = pciInterrupts;
        return board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = mode, AutoRecover = true });
    }

    /// <summary>
    /// Test-only sabotage: marks every descriptor of a receive queue (receiveq1 unless <paramref name="queueIndex"/>
    /// names another) in guest RAM as chained (VIRTQ_DESC_F_NEXT), with an out-of-range next index on a split ring. The
    /// driver keeps its own shadow of the descriptors and never reads them back, so only the device sees the damage, the
    /// next time it takes a receive buffer.
    /// </summary>
    internal static void CorruptReceiveDescriptors(RiscvVirtBoard board, VirtioNetDevice net, int queueIndex = 0)
    {
        VirtqueueState rx = net.GetQueueStates()[queueIndex];
        Span<byte> table = board.Machine.GuestRam.GetSpan(rx.DescriptorArea, rx.Size * 16);
        bool packed = rx.Layout == "packed";
        for (int i = 0; i < rx.Size; i++)
        {
            Span<byte> descriptor = table.Slice(i * 16, 16);

            // Split: addr, len, flags at 12, next at 14. Packed: addr, len, id at 12, flags at 14 (§2.7.5, §2.8.13).
            Span<byte> flags = descriptor.Slice(packed ? 14 : 12, 2);
            BinaryPrimitives.WriteUInt16LittleEndian(flags, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(flags) | 1));
            if (!packed)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(descriptor.Slice(14, 2), 0xffff);
            }
        }
    }

    /// <summary>Waits (receiving and discarding) until the driver has recovered at least <paramref name="count"/> times.</summary>
    private static void WaitForRecoveries(VirtioNetDevice net, long count)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        byte[] scratch = new byte[net.Pairs[0].MaxReceiveFrameLength];
        var clock = Stopwatch.StartNew();
        while (net.Recoveries < count)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the driver did not recover ({net.Recoveries} recoveries; status healthy: {net.CheckHealth()})");
            if (net.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(200), ct))
            {
                net.Pairs[0].TryReceive(scratch, out _);
            }
        }
    }

    private static byte[] Frame(ReadOnlySpan<byte> destination, int length)
    {
        byte[] frame = new byte[length];
        new Random(Interlocked.Increment(ref _sequence)).NextBytes(frame);
        destination.CopyTo(frame);
        frame[6] = 0x02;
        frame[12] = 0x88;
        frame[13] = 0xb5;
        return frame;
    }

    /// <summary>Injects <paramref name="frame"/> and a marker to the device's own MAC; true when the frame arrived (intact) before the marker.</summary>
    private static bool Arrives(VirtioNetDevice net, UdpWire wire, byte[] frame)
    {
        byte[] marker = Frame(net.MacAddress.Span, 80);
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

    private static void ExchangeVerifiedFrames(VirtioNetDevice net, UdpWire wire, int count)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        for (int i = 0; i < count; i++)
        {
            int size = 60 + ((i * 997) % 1455);
            byte[] outgoing = Frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], size);
            var clock = Stopwatch.StartNew();
            while (!net.Pairs[0].TrySend(outgoing))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"frame {i}: the transmit ring stayed full");
                Thread.Yield();
            }

            Assert.Equal(outgoing, wire.Receive(TimeSpan.FromSeconds(5)));

            byte[] incoming = Frame(net.MacAddress.Span, size);
            wire.Inject(incoming);
            Assert.True(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(5), ct), $"frame {i} ({size} bytes) did not arrive");
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(incoming, received.AsSpan(0, length).ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void QemuFlagsTheCorruptedRingAndTheDriverRecoversKeepingItsFiltersAndHundredsOfFramesFlow(
        string transport, bool packed, OperationMode mode, VirtioPciInterruptMode pciInterrupts)
    {
        using var wire = new UdpWire();
        using RiscvVirtBoard board = Start(transport, packed, wire.Netdev);
        using VirtioNetDevice net = Open(board, mode, pciInterrupts);
        Assert.Equal(packed ? VirtioNet.Virtqueues.RingLayout.Packed : VirtioNet.Virtqueues.RingLayout.Split, net.RingLayout);
        var events = new List<DeviceRecoveredEventArgs>();
        net.Recovered += (_, e) => events.Add(e);

        // Filter state the device must get back: promiscuous off, one extra unicast address in the MAC table.
        net.Control.SetPromiscuous(false);
        net.Control.SetMacFilter([new PhysicalAddress(ListedUnicast)], []);
        Assert.False(Arrives(net, wire, Frame(OtherUnicast, 80)));
        Assert.True(Arrives(net, wire, Frame(ListedUnicast, 80)));
        ExchangeVerifiedFrames(net, wire, 20);
        long receivedBefore = net.Pairs[0].ReceiveStatistics.Packets;
        long sentBefore = net.Pairs[0].TransmitStatistics.Packets;

        // The sabotage, then one frame for QEMU to choke on.
        CorruptReceiveDescriptors(board, net);
        wire.Inject(Frame(net.MacAddress.Span, 100));
        WaitForRecoveries(net, 1);

        DeviceRecoveredEventArgs recovered = Assert.Single(events);
        Assert.Contains("DEVICE_NEEDS_RESET", recovered.Cause, StringComparison.Ordinal);
        Assert.Equal(1, net.Recoveries);
        Assert.True(net.CheckHealth());
        Assert.All(net.GetQueueStates(), q => Assert.Null(q.BrokenReason));
        Assert.True(net.Pairs[0].ReceiveStatistics.Packets >= receivedBefore, "statistics were reset by recovery");
        Assert.Equal(sentBefore, net.Pairs[0].TransmitStatistics.Packets);

        // The device was told again: frames for other MACs are still dropped, the listed address still passes.
        Assert.False(Arrives(net, wire, Frame(OtherUnicast, 80)));
        Assert.True(Arrives(net, wire, Frame(ListedUnicast, 80)));
        ExchangeVerifiedFrames(net, wire, Frames);
        Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        Assert.Equal(1, net.Recoveries);
    }

    [Theory]
    [InlineData("mmio", OperationMode.Interrupt, VirtioPciInterruptMode.None)]
    [InlineData("pci", OperationMode.Poll, VirtioPciInterruptMode.None)]
    [InlineData("pci", OperationMode.Interrupt, VirtioPciInterruptMode.MsixPerQueue)]
    public void AfterQemuFlagsTheDeviceDhcpAndPingWorkAgain(string transport, OperationMode mode, VirtioPciInterruptMode pciInterrupts)
    {
        using RiscvVirtBoard board = Start(transport, packed: false, "user,id=n0");
        using VirtioNetDevice net = Open(board, mode, pciInterrupts);
        var (lease, replies) = QemuNet.DhcpAndPing(net, 3);
        Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));

        // A broadcast ARP for the gateway makes slirp answer, and QEMU trip over the corrupted ring.
        CorruptReceiveDescriptors(board, net);
        Assert.True(net.Pairs[0].TrySend(ArpRequest(net.MacAddress.Span, lease.Address, QemuNet.Gateway)));
        WaitForRecoveries(net, 1);

        (lease, replies) = QemuNet.DhcpAndPing(net, 200);
        Assert.Equal(IPAddress.Parse("10.0.2.15"), lease.Address);
        Assert.Equal(200, replies.Count);
        Assert.All(replies, r => Assert.Equal(PingStatus.Success, r.Status));
        Assert.Equal(1, net.Recoveries);
    }

    [Theory]
    [InlineData("mmio", OperationMode.Interrupt, VirtioPciInterruptMode.None)]
    [InlineData("pci", OperationMode.Poll, VirtioPciInterruptMode.None)]
    public void AUsedIndexThatJumpsPastTheRingLatchesItBrokenAndTheDriverRecoversFromItsOwnFinding(string transport, OperationMode mode, VirtioPciInterruptMode pciInterrupts)
    {
        using var wire = new UdpWire();
        using RiscvVirtBoard board = Start(transport, packed: false, wire.Netdev);
        using VirtioNetDevice net = Open(board, mode, pciInterrupts);
        var events = new List<DeviceRecoveredEventArgs>();
        net.Recovered += (_, e) => events.Add(e);
        ExchangeVerifiedFrames(net, wire, 10);

        // Test-only sabotage of what the device writes: receiveq1's used.idx (§2.7.8, at offset 2 of the used ring)
        // moved 500 entries on, more than the ring holds. QEMU itself sees nothing wrong; the driver's check does.
        VirtqueueState rx = net.GetQueueStates()[0];
        Span<byte> usedIdx = board.Machine.GuestRam.GetSpan(rx.DeviceArea + 2, 2);
        BinaryPrimitives.WriteUInt16LittleEndian(usedIdx, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(usedIdx) + 500));
        WaitForRecoveries(net, 1);

        Assert.Contains("broke", Assert.Single(events).Cause, StringComparison.Ordinal);
        Assert.True(net.CheckHealth());
        ExchangeVerifiedFrames(net, wire, Frames);
        Assert.Equal(1, net.Recoveries);
    }

    // An ARP request (RFC 826) from the driver's MAC and address for the target's hardware address.
    private static byte[] ArpRequest(ReadOnlySpan<byte> mac, IPAddress sender, IPAddress target)
    {
        byte[] frame = new byte[60];
        frame.AsSpan(0, 6).Fill(0xff);
        mac.CopyTo(frame.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 1);      // Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), 0x0800); // IPv4
        frame[18] = 6;
        frame[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(20), 1);      // request
        mac.CopyTo(frame.AsSpan(22));
        sender.GetAddressBytes().CopyTo(frame, 28);
        target.GetAddressBytes().CopyTo(frame, 38);
        return frame;
    }

    [Fact]
    public void OnALegacyDeviceQemuSetsNoNeedsResetAndAnExplicitRecoverBringsTrafficBack()
    {
        using var wire = new UdpWire();
        QemuRequirement.EnsureAvailable();
        using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions { ModernMmio = false, Netdev = wire.Netdev }, TestContext.Current.CancellationToken);
        using VirtioNetDevice net = board.OpenNetDevice(null, new VirtioNetOptions { OperationMode = OperationMode.Interrupt, AutoRecover = true });
        net.Control.SetPromiscuous(false);
        ExchangeVerifiedFrames(net, wire, 10);

        // QEMU marks the legacy device broken and stops serving it, but has no status bit to say so (§2.1.2 is modern only).
        CorruptReceiveDescriptors(board, net);
        wire.Inject(Frame(net.MacAddress.Span, 100));
        Assert.False(net.Pairs[0].WaitForReceive(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        Assert.True(net.CheckHealth());
        Assert.Equal(0, net.Recoveries);

        net.Recover();
        Assert.Equal(1, net.Recoveries);
        Assert.False(Arrives(net, wire, Frame(OtherUnicast, 80)));
        ExchangeVerifiedFrames(net, wire, Frames);
    }
}
