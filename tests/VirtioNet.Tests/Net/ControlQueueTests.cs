using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Net.Filtering;
using VirtioNet.Net.Vlan;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The control queue and the features on it, against a software device that answers (or refuses, or never answers)
/// commands from another thread, as a device would: the failures real QEMU does not produce on demand.
/// </summary>
public sealed class ControlQueueTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx;

    private const ulong Control = VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlRxExtra | VirtioNetFeatures.CtrlVlan |
        VirtioNetFeatures.CtrlMacAddr | VirtioNetFeatures.GuestAnnounce | VirtioNetFeatures.CtrlGuestOffloads;

    private readonly HeapDmaAllocator _memory = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _responder;

    public void Dispose()
    {
        StopResponder();
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
        _stop.Dispose();
    }

    // The responder must stop before the device's memory is freed, or it would read freed rings.
    private void StopResponder()
    {
        _stop.Cancel();
        _responder?.Wait(TimeSpan.FromSeconds(5));
    }

    private DisposeAction StopFirst(VirtioNetDevice net) => new(() =>
    {
        StopResponder();
        net.Dispose();
    });

    /// <summary>A command as the device saw it: the readable buffers' lengths and their bytes.</summary>
    private sealed record Command(byte Class, byte Code, byte[] Payload, uint[] ReadableLengths, uint[] WritableLengths);

    /// <summary>Decides the ack of each command; null means never answer.</summary>
    private delegate byte? Answer(Command command);

    private (VirtioNetDevice Net, ConcurrentQueue<Command> Commands) Open(ulong offered, Answer answer, VirtioNetOptions? options = null, ulong offeredHigh = 0)
    {
        var transport = new SoftwareNetTransport(offered) { OfferedFeaturesHigh = offeredHigh };
        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, options ?? new VirtioNetOptions { OperationMode = OperationMode.Poll });
        var commands = new ConcurrentQueue<Command>();
        if (net.Control.Queue is { } control)
        {
            var device = new SoftwareSplitDevice(_memory, control.Queue, eventIdx: (net.NegotiatedFeatures & VirtioFeatures.EventIdx) != 0);
            CancellationToken stop = _stop.Token;
            _responder = Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (!device.TryPop(out DeviceChain? chain))
                    {
                        Thread.Sleep(1);
                        continue;
                    }

                    byte[] readable = chain.ReadReadable();
                    var command = new Command(
                        readable[0], readable[1], readable[2..],
                        [.. chain.Buffers.Where(b => !b.Writable).Select(b => b.Length)],
                        [.. chain.Buffers.Where(b => b.Writable).Select(b => b.Length)]);
                    commands.Enqueue(command);
                    if (answer(command) is { } ack)
                    {
                        device.Complete(chain, (uint)chain.WriteWritable([ack]));
                    }
                }
            }, CancellationToken.None);
        }

        return (net, commands);
    }

    private static byte? Ok(Command command) => VirtioNetControlCommands.AckOk;

    [Fact]
    public void TheFirstReceiveModeChangeSetsEveryModeThenOnlyChangesAreSent()
    {
        var (net, commands) = Open(Modern | Control, Ok);
        using (StopFirst(net))
        {
            Assert.Equal(2, net.Control.Queue!.QueueIndex);
            net.Control.SetPromiscuous(false);

            // The device's reset state is its own: every mode is sent once, in command order, each "off".
            Assert.Equal([0, 1, 2, 3, 4, 5], commands.Select(c => (int)c.Code));
            Assert.All(commands, c =>
            {
                Assert.Equal((byte)VirtioNetControlClass.Rx, c.Class);
                Assert.Equal(new byte[] { 0 }, c.Payload);
                Assert.Equal([2u, 1u], c.ReadableLengths);
                Assert.Equal([1u], c.WritableLengths);
            });

            commands.Clear();
            net.Control.SetPromiscuous(true);
            Command only = Assert.Single(commands);
            Assert.Equal((VirtioNetControlCommands.RxPromisc, (byte)1), (only.Code, only.Payload[0]));
            Assert.Equal(ReceiveFilterFlags.Promiscuous, net.Control.ReceiveFilter);
            Assert.Equal(7, net.Control.Queue.CommandsCompleted);
        }
    }

    [Fact]
    public void WithoutRxExtraOnlyPromiscuousAndAllMulticastAreSentAndTheOthersAreRefused()
    {
        var (net, commands) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx, Ok);
        using (StopFirst(net))
        {
            net.Control.SetAllMulticast(true);
            Assert.Equal([0, 1], commands.Select(c => (int)c.Code));
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.SetReceiveMode(ReceiveFilterFlags.NoBroadcast));
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
            Assert.Contains("CTRL_RX_EXTRA", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ACommandTheDeviceRejectsFailsNamingItAndTheQueueStaysUsable()
    {
        var (net, commands) = Open(Modern | Control, c => c.Class == (byte)VirtioNetControlClass.Vlan && c.Payload[0] == 7 ? VirtioNetControlCommands.AckErr : VirtioNetControlCommands.AckOk);
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.AddVlan(7));
            Assert.Equal(VirtioErrorReason.CommandRejected, e.Reason);
            Assert.Contains("VIRTIO_NET_CTRL_VLAN_ADD", e.Message, StringComparison.Ordinal);
            Assert.Empty(net.Control.VlanIds);
            Assert.True(net.Control.Queue!.IsUsable);
            Assert.Equal(1, net.Control.Queue.CommandsRejected);

            net.Control.AddVlan(8);
            Assert.Equal([8], net.Control.VlanIds);
            Command last = commands.Last();
            Assert.Equal(new byte[] { 8, 0 }, last.Payload);
        }
    }

    [Fact]
    public void ACommandTheDeviceNeverAnswersTimesOutAndLaterCommandsFailClearly()
    {
        bool answer = false;
        var (net, commands) = Open(Modern | Control, _ => Volatile.Read(ref answer) ? VirtioNetControlCommands.AckOk : null, new VirtioNetOptions
        {
            OperationMode = OperationMode.Poll,
            ControlCommandTimeout = TimeSpan.FromMilliseconds(200),
        });
        using (StopFirst(net))
        {
            var clock = Stopwatch.StartNew();
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.AddVlan(5));
            TimeSpan waited = clock.Elapsed;
            Assert.Equal(VirtioErrorReason.Timeout, e.Reason);
            Assert.Contains("VIRTIO_NET_CTRL_VLAN_ADD", e.Message, StringComparison.Ordinal);
            Assert.InRange(waited, TimeSpan.FromMilliseconds(190), TimeSpan.FromSeconds(5));
            Assert.False(net.Control.Queue!.IsUsable);

            // Later commands fail at once, saying why, without touching the ring (the device saw one command only).
            clock.Restart();
            VirtioException later = Assert.Throws<VirtioException>(() => net.Control.SetPromiscuous(true));
            Assert.Equal(VirtioErrorReason.Timeout, later.Reason);
            Assert.Contains("unusable", later.Message, StringComparison.Ordinal);
            Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(150));
            Assert.Single(commands);

            // The data path is unaffected.
            Assert.True(net.Pairs[0].TrySend(new byte[60]));
        }
    }

    [Fact]
    public void AnAckThatIsNeitherOkNorErrIsReportedAsMisbehaviour()
    {
        var (net, _) = Open(Modern | Control, _ => 7);
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.SetPromiscuous(true));
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
            Assert.Contains("ack 7", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void TheMacTableCarriesBothListsInTheirOwnDescriptorsAndOverflowTurnsOnAllUnicast()
    {
        var (net, commands) = Open(Modern | Control, Ok, new VirtioNetOptions { OperationMode = OperationMode.Poll, MacFilterCapacity = 4 });
        using (StopFirst(net))
        {
            PhysicalAddress[] unicast = [.. Enumerable.Range(1, 5).Select(i => new PhysicalAddress([0x02, 0, 0, 0, 0, (byte)i]))];
            PhysicalAddress[] multicast = [new([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]), new([0x33, 0x33, 0, 0, 0, 1])];
            MacFilterPlan plan = net.Control.SetMacFilter(unicast, multicast);
            Assert.True(plan.UnicastOverflow);

            Command table = commands.First();
            Assert.Equal(((byte)VirtioNetControlClass.Mac, VirtioNetControlCommands.MacTableSet), (table.Class, table.Code));
            Assert.Equal([2u, 4u, 4u + 12u], table.ReadableLengths);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(table.Payload));
            Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(table.Payload.AsSpan(4)));
            Assert.Equal(multicast[0].GetAddressBytes(), table.Payload.AsSpan(8, 6).ToArray());
            Assert.Equal(multicast[1].GetAddressBytes(), table.Payload.AsSpan(14, 6).ToArray());

            // ALLUNI went on as the fallback; the caller's own modes (none) stay as asked.
            Assert.Contains(commands, c => c.Class == 0 && c.Code == VirtioNetControlCommands.RxAllUni && c.Payload[0] == 1);
            Assert.Equal(ReceiveFilterFlags.AllUnicast, net.Control.ReceiveFilter);

            // A list that fits again withdraws the fallback.
            commands.Clear();
            net.Control.SetMacFilter(unicast[..2], []);
            Assert.Contains(commands, c => c.Class == 0 && c.Code == VirtioNetControlCommands.RxAllUni && c.Payload[0] == 0);
            Assert.Equal(ReceiveFilterFlags.None, net.Control.ReceiveFilter);
        }
    }

    [Fact]
    public void SettingTheMacAddressSendsAddrSetAndChangesMacAddress()
    {
        var (net, commands) = Open(Modern | Control, Ok);
        using (StopFirst(net))
        {
            net.Control.SetMacAddress(PhysicalAddress.Parse("02-11-22-33-44-55"));
            Command command = Assert.Single(commands);
            Assert.Equal(((byte)VirtioNetControlClass.Mac, VirtioNetControlCommands.MacAddrSet), (command.Class, command.Code));
            Assert.Equal(new byte[] { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }, command.Payload);
            Assert.Equal(command.Payload, net.MacAddress.ToArray());
            Assert.Throws<ArgumentException>(() => net.Control.SetMacAddress(PhysicalAddress.Parse("01-00-5E-00-00-01")));
        }
    }

    [Fact]
    public void AVlanIdAbove4095IsRefusedBeforeAnyCommand()
    {
        var (net, commands) = Open(Modern | Control, Ok);
        using (StopFirst(net))
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => net.Control.AddVlan(4096));
            Assert.Throws<ArgumentOutOfRangeException>(() => net.Control.RemoveVlan(-1));
            Assert.Empty(commands);
        }
    }

    [Fact]
    public void WithoutTheControlQueueTheFilterMethodsSayWhichFeatureIsMissing()
    {
        var (net, _) = Open(Modern | Control, Ok, new VirtioNetOptions { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioNetFeatures.CtrlVq });
        using (StopFirst(net))
        {
            Assert.Null(net.Control.Queue);
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetOptions.ControlFeatures);
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.SetPromiscuous(false));
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
            Assert.Contains("VIRTIO_NET_F_CTRL_RX", e.Message, StringComparison.Ordinal);
            Assert.Throws<VirtioException>(() => net.Control.AddVlan(1));
        }
    }

    [Fact]
    public void GuestOffloadsAreLimitedToNegotiatedBitsAndSentAsLe64()
    {
        var (net, commands) = Open(Modern | Control, Ok);
        using (StopFirst(net))
        {
            Assert.Throws<ArgumentException>(() => net.Control.SetGuestOffloads(VirtioNetFeatures.GuestCsum));
            Assert.Throws<ArgumentException>(() => net.Control.SetGuestOffloads(VirtioNetFeatures.Csum));
            Assert.Empty(commands);

            net.Control.SetGuestOffloads(0);
            Command command = Assert.Single(commands);
            Assert.Equal(((byte)VirtioNetControlClass.GuestOffloads, VirtioNetControlCommands.GuestOffloadsSet), (command.Class, command.Code));
            Assert.Equal(new byte[8], command.Payload);
        }
    }

    [Fact]
    public void UdpTunnelGuestOffloadsTravelAsBits46And47OfTheOffloadsBitmap()
    {
        const ulong guest = VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;
        const ulong tunnelBits = VirtioNetFeatures.GuestUdpTunnelGsoOffload | VirtioNetFeatures.GuestUdpTunnelGsoCsumOffload;
        var (net, commands) = Open(Modern | Control | guest, Ok, offeredHigh: (VirtioNetFeatures.GuestUdpTunnelGso | VirtioNetFeatures.GuestUdpTunnelGsoCsum).High);
        using (StopFirst(net))
        {
            // Features 65 and 66 negotiated: in effect as bits 46 and 47 (virtio v1.4 §5.1.6.5.6.1).
            Assert.Equal(guest | tunnelBits, net.Control.GuestOffloads);

            net.Control.SetGuestOffloads(guest);
            net.Control.SetGuestOffloads(guest | VirtioNetFeatures.GuestUdpTunnelGsoOffload);
            Assert.Equal(2, commands.Count);
            Assert.Equal(BitConverter.GetBytes(guest), commands.ToArray()[0].Payload);
            Assert.Equal(BitConverter.GetBytes(guest | VirtioNetFeatures.GuestUdpTunnelGsoOffload), commands.ToArray()[1].Payload);
        }

        var (plain, plainCommands) = Open(Modern | Control | guest, Ok);
        using (StopFirst(plain))
        {
            Assert.Equal(guest, plain.Control.GuestOffloads);
            Assert.Throws<ArgumentException>(() => plain.Control.SetGuestOffloads(guest | VirtioNetFeatures.GuestUdpTunnelGsoOffload));
            Assert.Empty(plainCommands);
        }
    }

    [Fact]
    public void AnAnnounceRequestSendsAGratuitousArpOrNeighbourAdvertPerAddressThenAcksOnce()
    {
        var transport = new SoftwareNetTransport(Modern | Control);
        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        var commands = new ConcurrentQueue<Command>();
        var device = new SoftwareSplitDevice(_memory, net.Control.Queue!.Queue, eventIdx: true);
        var tx = new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true);
        CancellationToken stop = _stop.Token;
        _responder = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (device.TryPop(out DeviceChain? chain))
                {
                    byte[] readable = chain.ReadReadable();
                    commands.Enqueue(new Command(readable[0], readable[1], readable[2..], [], []));
                    device.Complete(chain, (uint)chain.WriteWritable([VirtioNetControlCommands.AckOk]));
                }
                else
                {
                    Thread.Sleep(1);
                }
            }
        }, CancellationToken.None);

        using (StopFirst(net))
        {
            net.Control.SetAnnounceAddresses([IPAddress.Parse("10.0.2.15"), IPAddress.Parse("192.168.7.1"), IPAddress.Parse("fd77::2")]);
            var events = new List<bool>();
            net.LinkStateChanged += (_, e) => events.Add(e.AnnounceRequested);

            BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.StatusOffset), VirtioNetConfig.StatusLinkUp | VirtioNetConfig.StatusAnnounce);
            Assert.True(net.CheckLink());
            Assert.Equal([true], events);
            Assert.Equal(1, net.Control.Announcements);
            Command ack = Assert.Single(commands);
            Assert.Equal(((byte)VirtioNetControlClass.Announce, VirtioNetControlCommands.AnnounceAck), (ack.Class, ack.Code));

            List<DeviceChain> sent = tx.PopAll();
            Assert.Equal(3, sent.Count);
            byte[] expected = new byte[GratuitousArp.FrameLength];
            GratuitousArp.Write(net.MacAddress.Span, IPAddress.Parse("192.168.7.1"), expected);
            Assert.Equal(expected, sent[1].ReadReadable()[net.HeaderLength..]);
            Assert.Equal(0x0806, BinaryPrimitives.ReadUInt16BigEndian(expected.AsSpan(12)));
            byte[] advert = new byte[UnsolicitedNeighbourAdvertisement.FrameLength];
            UnsolicitedNeighbourAdvertisement.Write(net.MacAddress.Span, IPAddress.Parse("fd77::2"), advert);
            Assert.Equal(advert, sent[2].ReadReadable()[net.HeaderLength..]);
            Assert.ThrowsAny<ArgumentException>(() => net.Control.SetAnnounceAddresses([IPAddress.Parse("fd77::2"), null!]));

            // The software device leaves the bit set (it ignores the ack): the same request is not answered twice.
            net.CheckLink();
            Assert.Single(commands);
        }
    }

    [Fact]
    public void TaggedSendsAndReceivesInsertAndStripTheTag()
    {
        var transport = new SoftwareNetTransport(Modern);
        using VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        var rx = new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx: true);
        var tx = new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx: true);
        byte[] frame = new byte[100];
        new Random(1).NextBytes(frame);

        Assert.True(net.Pairs[0].TrySend(frame, new VlanTag(42, priority: 3)));
        byte[] onWire = Assert.Single(tx.PopAll()).ReadReadable()[net.HeaderLength..];
        Assert.Equal(104, onWire.Length);
        Assert.True(VlanFrame.TryReadTag(onWire, out VlanTag sentTag));
        Assert.Equal((42, 3), (sentTag.Id, sentTag.Priority));

        DeviceChain buffer = rx.PopAll()[0];
        byte[] header = new byte[net.HeaderLength];
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
        rx.Complete(buffer, (uint)buffer.WriteWritable([.. header, .. onWire]));
        byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
        Assert.True(net.Pairs[0].TryReceive(received, out int length, out VlanTag? tag));
        Assert.Equal(sentTag, tag);
        Assert.Equal(frame, received.AsSpan(0, length).ToArray());

        Assert.Throws<ArgumentException>(() => net.Pairs[0].TrySend(new byte[net.Pairs[0].MaxTransmitFrameLength - 3], new VlanTag(1)));
    }
}
