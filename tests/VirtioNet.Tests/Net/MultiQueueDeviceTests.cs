using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Net.FlowControl;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Vlan;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Multi-queue bring-up and the MQ, RSS, hash and coalescing commands against a software device that answers control
/// commands the moment they are kicked (so the ones sent during bring-up are answered too).
/// </summary>
public sealed class MultiQueueDeviceTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioNetFeatures.CtrlVq;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    /// <summary>A command as the device saw it.</summary>
    private sealed record Command(byte Class, byte Code, byte[] Payload);

    private (VirtioNetDevice Net, AnsweringTransport Transport) Open(ulong offered, int maxPairs, int wantedPairs, Func<Command, byte>? answer = null)
    {
        var inner = new SoftwareNetTransport(offered);
        BinaryPrimitives.WriteUInt16LittleEndian(inner.Config.AsSpan(VirtioNetConfig.MaxVirtqueuePairsOffset), (ushort)maxPairs);
        inner.Config[VirtioNetConfig.RssMaxKeySizeOffset] = 40;
        BinaryPrimitives.WriteUInt16LittleEndian(inner.Config.AsSpan(VirtioNetConfig.RssMaxIndirectionTableLengthOffset), 128);
        BinaryPrimitives.WriteUInt32LittleEndian(inner.Config.AsSpan(VirtioNetConfig.SupportedHashTypesOffset), 0x3f);
        inner.QueueSizeMax.Clear();
        for (int i = 0; i <= 2 * maxPairs; i++)
        {
            inner.QueueSizeMax[i] = i == 2 * maxPairs ? 64 : 256;
        }

        var transport = new AnsweringTransport(inner, _memory, 2 * maxPairs, answer ?? (_ => VirtioNetControlCommands.AckOk));
        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = wantedPairs });
        return (net, transport);
    }

    [Fact]
    public void WithMqTheWantedPairsAreSetUpTheControlQueueFollowsTheDevicesMaximumAndThePairsAreAnnounced()
    {
        var (net, transport) = Open(Modern | VirtioNetFeatures.Mq, maxPairs: 4, wantedPairs: 3);
        using (net)
        {
            Assert.Equal(3, net.Pairs.Count);
            Assert.Equal(3, net.Control.ActiveQueuePairs);
            Assert.Equal([0, 1, 2, 3, 4, 5, 8], transport.Inner.ActiveQueues.Keys.Order());
            Assert.Equal(8, net.Control.Queue!.QueueIndex);
            Assert.Equal(["receiveq1", "receiveq2", "receiveq3"], net.Pairs.Select(p => p.ReceiveQueue).Select(q => q.Statistics.Name));
            Assert.Equal([1, 3, 5], net.Pairs.Select(p => p.TransmitQueue).Select(q => q.QueueIndex));

            // §5.1.6.5.5: VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET after DRIVER_OK, with the pairs set up.
            Command pairs = Assert.Single(transport.Commands);
            Assert.Equal(((byte)VirtioNetControlClass.Mq, VirtioNetControlCommands.MqVqPairsSet), (pairs.Class, pairs.Code));
            Assert.Equal(new byte[] { 3, 0 }, pairs.Payload);
            Assert.True(transport.DriverOkBeforeFirstCommand);
        }
    }

    [Fact]
    public void TheWantedPairsAreCappedAtTheDevicesMaximumAndOnePairSendsNoCommand()
    {
        var (capped, transport) = Open(Modern | VirtioNetFeatures.Mq, maxPairs: 2, wantedPairs: 16);
        using (capped)
        {
            Assert.Equal(2, capped.Pairs.Count);
            Assert.Equal(new byte[] { 2, 0 }, Assert.Single(transport.Commands).Payload);
        }

        var (single, quiet) = Open(Modern | VirtioNetFeatures.Mq, maxPairs: 4, wantedPairs: 1);
        using (single)
        {
            Assert.Single(single.Pairs);
            Assert.Equal(8, single.Control.Queue!.QueueIndex);
            Assert.Empty(quiet.Commands);
            ArgumentOutOfRangeException e = Assert.Throws<ArgumentOutOfRangeException>(() => single.Control.SetActiveQueuePairs(2));
            Assert.Contains("1 to 1", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void WithoutMqOrRssThereIsOnePairAndTheMultiQueueCommandsAreRefused()
    {
        var (net, _) = Open(Modern, maxPairs: 1, wantedPairs: 4);
        using (net)
        {
            Assert.Single(net.Pairs);
            Assert.Equal(2, net.Control.Queue!.QueueIndex);
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, Assert.Throws<VirtioException>(() => net.Control.SetActiveQueuePairs(1)).Reason);
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, Assert.Throws<VirtioException>(() => net.Control.ConfigureRss(new RssConfiguration())).Reason);
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, Assert.Throws<VirtioException>(() => net.Control.SetTransmitCoalescing(default)).Reason);
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, Assert.Throws<VirtioException>(() => net.Control.SetQueueCoalescing(0, default)).Reason);
        }
    }

    [Fact]
    public void WithRssAloneTheBringUpSpreadsOverThePairsWithAnRssConfiguration()
    {
        var (net, transport) = Open(Modern | VirtioNetFeatures.Rss, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            Command rss = Assert.Single(transport.Commands);
            Assert.Equal(VirtioNetControlCommands.MqRssConfig, rss.Code);
            Assert.Equal(0x3fu, BinaryPrimitives.ReadUInt32LittleEndian(rss.Payload));
            Assert.Equal(127, BinaryPrimitives.ReadUInt16LittleEndian(rss.Payload.AsSpan(4)));
            Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(rss.Payload.AsSpan(8 + 256)));
            Assert.Equal(40, rss.Payload[8 + 256 + 2]);
            Assert.Equal(2, net.Control.ActiveQueuePairs);
            Assert.Equal(0, net.Control.TransmitPairFor(0x80));
            Assert.Equal(1, net.Control.TransmitPairFor(0x81));
        }
    }

    [Fact]
    public void AnRssConfigurationIsValidatedBeforeItIsSentAndRecordedOnlyOnceTheDeviceAcks()
    {
        bool refuse = false;
        var (net, transport) = Open(Modern | VirtioNetFeatures.Mq | VirtioNetFeatures.Rss, maxPairs: 4, wantedPairs: 4, _ => Volatile.Read(ref refuse) ? VirtioNetControlCommands.AckErr : VirtioNetControlCommands.AckOk);
        using (net)
        {
            transport.Commands.Clear();
            ArgumentException bad = Assert.Throws<ArgumentException>(() => net.Control.ConfigureRss(new RssConfiguration { IndirectionTable = new ushort[100] }));
            Assert.Contains("power of two", bad.Message, StringComparison.Ordinal);
            Assert.Empty(transport.Commands);

            RssConfiguration two = RssConfiguration.Spread(2, 64);
            net.Control.ConfigureRss(two);
            Assert.Equal(two, net.Control.Rss);
            Assert.Equal(4, net.Control.ActiveQueuePairs);
            Assert.Equal(MultiQueuePayloads.RssConfigLength(two), Assert.Single(transport.Commands).Payload.Length);

            Volatile.Write(ref refuse, true);
            Assert.Equal(VirtioErrorReason.CommandRejected, Assert.Throws<VirtioException>(() => net.Control.ConfigureRss(RssConfiguration.Spread(4, 128))).Reason);
            Assert.Equal(two, net.Control.Rss);

            Volatile.Write(ref refuse, false);
            net.Control.SetActiveQueuePairs(2);
            Assert.Null(net.Control.Rss);
            Assert.Equal(2, net.Control.ActiveQueuePairs);
        }
    }

    [Fact]
    public void CoalescingCommandsCarryTheirStructures()
    {
        var (net, transport) = Open(Modern | VirtioNetFeatures.Mq | VirtioNetFeatures.NotfCoal | VirtioNetFeatures.VqNotfCoal, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            transport.Commands.Clear();
            net.Control.SetTransmitCoalescing(new NotificationCoalescing(16, 100));
            net.Control.SetReceiveCoalescing(new NotificationCoalescing(32, 50));
            net.Control.SetQueueCoalescing(3, new NotificationCoalescing(1, 2));
            Assert.Equal(
                [(6, 0, "10000000 64000000"), (6, 1, "20000000 32000000"), (6, 2, "03000000 01000000 02000000")],
                transport.Commands.Select(c => ((int)c.Class, (int)c.Code, Hex(c.Payload))));
            Assert.Equal(new NotificationCoalescing(16, 100), net.Control.TransmitCoalescing);
            Assert.Throws<ArgumentOutOfRangeException>(() => net.Control.SetQueueCoalescing(4, default));
        }
    }

    [Fact]
    public void RecoverySendsTheDirectionWideCoalescingThenEachQueuesOwnThatIsStillInEffect()
    {
        const ulong coalescing = VirtioNetFeatures.Mq | VirtioNetFeatures.NotfCoal | VirtioNetFeatures.VqNotfCoal;
        var (net, transport) = Open(Modern | coalescing, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            // In the order of §5.1.6.5.9's example: transmitq1's own setting is replaced by the later TX_SET; the
            // receive queues' own settings came after RX_SET and stay; transmitq2's came after TX_SET and stays.
            net.Control.SetQueueCoalescing(1, new NotificationCoalescing(7, 70));
            net.Control.SetReceiveCoalescing(new NotificationCoalescing(32, 50));
            net.Control.SetQueueCoalescing(0, new NotificationCoalescing(1, 2));
            net.Control.SetQueueCoalescing(2, new NotificationCoalescing(3, 4));
            net.Control.SetTransmitCoalescing(new NotificationCoalescing(16, 100));
            net.Control.SetQueueCoalescing(3, new NotificationCoalescing(5, 6));
            transport.Commands.Clear();

            transport.Inner.RequestReset();
            Assert.False(net.CheckHealth());
            net.Recover();

            Assert.True(net.CheckHealth());
            Assert.Equal(1, net.Recoveries);
            Assert.Equal(
                [
                    (4, 0, "0200"),                          // VQ_PAIRS_SET 2: the queues named below are enabled again
                    (6, 0, "10000000 64000000"),             // TX_SET
                    (6, 1, "20000000 32000000"),             // RX_SET
                    (6, 2, "00000000 01000000 02000000"),    // VQ_SET receiveq1
                    (6, 2, "02000000 03000000 04000000"),    // VQ_SET receiveq2
                    (6, 2, "03000000 05000000 06000000"),    // VQ_SET transmitq2
                ],
                transport.Commands.Select(c => ((int)c.Class, (int)c.Code, Hex(c.Payload))));
            Assert.Equal(VirtioDeviceStatus.DriverOk, transport.Inner.Status & VirtioDeviceStatus.DriverOk);

            // A second recovery sends the same again: restoring stored nothing new and forgot nothing.
            transport.Commands.Clear();
            net.Recover();
            Assert.Equal(6, transport.Commands.Count);
            Assert.Equal("03000000 05000000 06000000", Hex(transport.Commands[^1].Payload));
        }
    }

    [Fact]
    public void WithoutPerQueueSettingsRecoverySendsNoVqSet()
    {
        var (net, transport) = Open(Modern | VirtioNetFeatures.Mq | VirtioNetFeatures.NotfCoal | VirtioNetFeatures.VqNotfCoal, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            net.Control.SetQueueCoalescing(1, new NotificationCoalescing(7, 70));
            net.Control.SetTransmitCoalescing(new NotificationCoalescing(16, 100));
            transport.Commands.Clear();

            net.Recover();

            Assert.Equal([(4, 0), (6, 0)], transport.Commands.Select(c => ((int)c.Class, (int)c.Code)));
        }
    }

    [Fact]
    public void RecoveryLeavesOutTheQueueSettingsOfPairsThatAreNotActiveAndKeepsThem()
    {
        var (net, transport) = Open(Modern | VirtioNetFeatures.Mq | VirtioNetFeatures.NotfCoal | VirtioNetFeatures.VqNotfCoal, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            net.Control.SetQueueCoalescing(0, new NotificationCoalescing(1, 2));
            net.Control.SetQueueCoalescing(3, new NotificationCoalescing(5, 6));
            net.Control.SetActiveQueuePairs(1);
            transport.Commands.Clear();

            // §5.1.6.5.9: a device refuses VQ_SET for a queue that is not enabled, which would fail the whole recovery.
            net.Recover();
            // (One pair is what the device starts with after reset: no VQ_PAIRS_SET.)
            Assert.Equal([(6, 2, "00000000 01000000 02000000")], transport.Commands.Select(c => ((int)c.Class, (int)c.Code, Hex(c.Payload))));

            // Kept, not forgotten: with both pairs active again, the next recovery sends transmitq2's too.
            net.Control.SetActiveQueuePairs(2);
            transport.Commands.Clear();
            net.Recover();
            Assert.Equal("03000000 05000000 06000000", Hex(transport.Commands[^1].Payload));
        }
    }

    [Fact]
    public void AfterASingleQueueResetThatQueuesOwnCoalescingIsSentAgainAndNoOther()
    {
        const ulong features = VirtioFeatures.RingReset | VirtioNetFeatures.Mq | VirtioNetFeatures.NotfCoal | VirtioNetFeatures.VqNotfCoal;
        var (net, transport) = Open(Modern | features, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            net.Control.SetQueueCoalescing(2, new NotificationCoalescing(3, 4));
            net.Control.SetQueueCoalescing(3, new NotificationCoalescing(5, 6));
            transport.Commands.Clear();

            net.ResetQueue(3);
            net.ResetQueue(1);

            Assert.Equal([3, 1], transport.Inner.QueueResets);
            Assert.Equal([(6, 2, "03000000 05000000 06000000")], transport.Commands.Select(c => ((int)c.Class, (int)c.Code, Hex(c.Payload))));
        }
    }

    [Fact]
    public void AfterDisableRssRecoverySendsTheRssConfigurationWithoutHashTypesAgain()
    {
        var (net, transport) = Open(Modern | VirtioNetFeatures.Mq | VirtioNetFeatures.Rss, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            net.Control.DisableRss();
            byte[] disabled = transport.Commands[^1].Payload;
            transport.Commands.Clear();

            net.Recover();

            Command sent = Assert.Single(transport.Commands);
            Assert.Equal(((byte)VirtioNetControlClass.Mq, VirtioNetControlCommands.MqRssConfig), (sent.Class, sent.Code));
            Assert.Equal(disabled, sent.Payload);
            Assert.Null(net.Control.Rss);
            Assert.Equal(2, net.Control.ActiveQueuePairs);
        }
    }

    [Fact]
    public void TheHashTheDeviceReportsIsDeliveredBesideTheFrameOfTheQueueItArrivedOn()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.Mq | VirtioNetFeatures.HashReport, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            Assert.Equal(VirtioNetHeader.HashReportLength, net.HeaderLength);
            var rx1 = new SoftwareSplitDevice(_memory, net.Pairs[1].ReceiveQueue.Queue, eventIdx: false);
            DeviceChain chain = Assert.IsType<DeviceChain>(rx1.PopAll()[0]);
            byte[] header = new byte[20];
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), 0x5a5a1234);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), (ushort)HashReportType.TcpIpv4);
            byte[] frame = [.. Enumerable.Range(0, 64).Select(i => (byte)i)];
            rx1.Complete(chain, (uint)chain.WriteWritable([.. header, .. frame]));

            byte[] destination = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.False(net.Pairs[0].TryReceive(destination, out _, out ReceiveHash _));
            Assert.True(net.Pairs[1].WaitForReceive(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
            Assert.True(net.Pairs[1].TryReceive(destination, out int length, out ReceiveHash hash));
            Assert.Equal(frame, destination[..length]);
            Assert.Equal(new ReceiveHash(0x5a5a1234, HashReportType.TcpIpv4), hash);
            Assert.Equal(1, net.Pairs[1].ReceiveQueue.Statistics.Packets);
            Assert.Equal(0, net.Pairs[0].ReceiveQueue.Statistics.Packets);
        }
    }

    [Fact]
    public void ARateLimitedPairRefusesFramesBeyondItsTokensAndOthersAreUnaffected()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.Mq, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            var clock = new StoppedClock();
            net.Pairs[1].RateLimit = new TokenBucket(ratePerSecond: 1000, burst: 200, clock);
            byte[] frame = new byte[100];
            Assert.True(net.Pairs[1].TrySend(frame));
            Assert.True(net.Pairs[1].TrySend(frame));
            Assert.False(net.Pairs[1].TrySend(frame));
            Assert.Equal(2, net.Pairs[1].TransmitQueue.Statistics.Packets);
            Assert.Equal(1, net.Pairs[1].RateLimit!.Throttled);
            for (int i = 0; i < 10; i++)
            {
                Assert.True(net.Pairs[0].TrySend(frame));
            }

            clock.Now += clock.TimestampFrequency / 10;
            Assert.True(net.Pairs[1].TrySend(frame));
            Assert.Throws<ArgumentOutOfRangeException>(() => net.Pairs[2].TrySend(frame));
        }
    }

    [Fact]
    public void APriorityTaggedFrameGoesToThePairItsPriorityMapsTo()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.Mq, maxPairs: 2, wantedPairs: 2);
        using (net)
        {
            byte[] frame = new byte[60];
            Assert.True(net.TrySendByPriority(frame, new VlanTag(10, priority: 6)));
            Assert.True(net.TrySendByPriority(frame, new VlanTag(10, priority: 1)));
            Assert.True(net.TrySendByPriority(frame, new VlanTag(10, priority: 7)));
            Assert.Equal((1, 2), (net.Pairs[0].TransmitQueue.Statistics.Packets, net.Pairs[1].TransmitQueue.Statistics.Packets));

            net.Control.PriorityMap = new PriorityQueueMap([1, 1, 1, 1, 1, 1, 1, 1], 2);
            Assert.True(net.TrySendByPriority(frame, new VlanTag(10, priority: 0)));
            Assert.Equal(3, net.Pairs[1].TransmitQueue.Statistics.Packets);
            Assert.Throws<ArgumentException>(() => net.Control.PriorityMap = PriorityQueueMap.Spread(3));
        }
    }

    private static string Hex(byte[] bytes) => string.Join(' ', bytes.Chunk(4).Select(Convert.ToHexString));

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class StoppedClock : TimeProvider
    {
        public long Now { get; set; } = 1;

        public override long TimestampFrequency => 1_000_000;

        public override long GetTimestamp() => Now;
    }

    /// <summary>
    /// Wraps <see cref="SoftwareNetTransport"/> and answers each control command synchronously when it is kicked, as a
    /// device would answer it on the notification (QEMU handles the control queue in its notify handler).
    /// </summary>
    private sealed class AnsweringTransport(SoftwareNetTransport inner, HeapDmaAllocator memory, int controlIndex, Func<Command, byte> answer) : IVirtioTransport
    {
        private SoftwareSplitDevice? _control;

        public SoftwareNetTransport Inner => inner;

        public List<Command> Commands { get; } = [];

        public bool DriverOkBeforeFirstCommand { get; private set; }

        public string Description => inner.Description;

        public bool IsLegacy => inner.IsLegacy;

        public int LegacyQueueAlign => inner.LegacyQueueAlign;

        public uint DeviceId => inner.DeviceId;

        public uint VendorId => inner.VendorId;

        public IInterruptLine? Interrupt => inner.Interrupt;

        public VirtioDeviceStatus ReadStatus() => inner.ReadStatus();

        public void WriteStatus(VirtioDeviceStatus status) => inner.WriteStatus(status);

        public ulong ReadDeviceFeatures() => inner.ReadDeviceFeatures();

        public void WriteDriverFeatures(ulong features) => inner.WriteDriverFeatures(features);

        public int GetQueueSizeMax(int queueIndex) => inner.GetQueueSizeMax(queueIndex);

        public bool IsQueueActive(int queueIndex) => inner.IsQueueActive(queueIndex);

        public void ActivateQueue(int queueIndex, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea)
        {
            inner.ActivateQueue(queueIndex, size, descriptorArea, driverArea, deviceArea);
            if (queueIndex == controlIndex)
            {
                _control = new SoftwareSplitDevice(memory, new QueueAreas(queueIndex, size, descriptorArea, driverArea, deviceArea), eventIdx: false);
            }
        }

        public void DeactivateQueue(int queueIndex) => inner.DeactivateQueue(queueIndex);

        public void ResetQueue(int queueIndex) => inner.ResetQueue(queueIndex);

        public void Notify(int queueIndex)
        {
            inner.Notify(queueIndex);
            if (queueIndex != controlIndex || _control is null)
            {
                return;
            }

            while (_control.TryPop(out DeviceChain? chain))
            {
                if (Commands.Count == 0)
                {
                    DriverOkBeforeFirstCommand = (inner.Status & VirtioDeviceStatus.DriverOk) != 0;
                }

                byte[] readable = chain.ReadReadable();
                var command = new Command(readable[0], readable[1], readable[2..]);
                Commands.Add(command);
                _control.Complete(chain, (uint)chain.WriteWritable([answer(command)]));
            }
        }

        public InterruptCause ReadAndAcknowledgeInterrupt() => inner.ReadAndAcknowledgeInterrupt();

        public uint ReadConfigGeneration() => inner.ReadConfigGeneration();

        public byte ReadConfig8(int offset) => inner.ReadConfig8(offset);

        public ushort ReadConfig16(int offset) => inner.ReadConfig16(offset);

        public uint ReadConfig32(int offset) => inner.ReadConfig32(offset);

        public void WriteConfig8(int offset, byte value) => inner.WriteConfig8(offset, value);

        public void Dispose() => inner.Dispose();
    }

}
