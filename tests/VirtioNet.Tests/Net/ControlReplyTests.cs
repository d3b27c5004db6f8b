using System.Buffers.Binary;
using System.Collections.Concurrent;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Statistics;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Control commands whose answer carries data (VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET, VIRTIO_NET_CTRL_STATS_QUERY/GET) and
/// VIRTIO_NET_CTRL_HASH_TUNNEL_SET, against a software device on another thread that answers as the spec says, or
/// lies: no peer here (QEMU 7.2/10.0, DPDK 22.11) offers VQ_NOTF_COAL, DEVICE_STATS or HASH_TUNNEL.
/// </summary>
public sealed class ControlReplyTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx;

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

    /// <summary>A command as the device saw it.</summary>
    private sealed record Command(byte Class, byte Code, byte[] Payload, uint[] ReadableLengths, uint[] WritableLengths);

    /// <summary>
    /// The device's answer: the ack, the reply written after it, and optionally a used length other than what was
    /// written (a lie). Null means never answer.
    /// </summary>
    private sealed record Answer(byte Ack, byte[] Reply, uint? UsedLength = null);

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

    // The responder attaches to the control queue as soon as the driver activates it (queue 2N), so that commands sent
    // during bring-up (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET with several pairs) are answered too.
    private (VirtioNetDevice Net, ConcurrentQueue<Command> Commands) Open(
        ulong offered, Func<Command, Answer?> answer, VirtioNetOptions? options = null, Action<SoftwareNetTransport>? configure = null, int controlIndex = 2)
    {
        var transport = new SoftwareNetTransport(offered);
        configure?.Invoke(transport);
        var commands = new ConcurrentQueue<Command>();
        var attached = new TaskCompletionSource<SoftwareSplitDevice>(TaskCreationOptions.RunContinuationsAsynchronously);
        transport.QueueActivated = (index, size, descriptors, driver, device) =>
        {
            if (index == controlIndex)
            {
                attached.TrySetResult(new SoftwareSplitDevice(_memory, new QueueAreas(index, size, descriptors, driver, device), eventIdx: (offered & VirtioFeatures.EventIdx) != 0));
            }
        };

        CancellationToken stop = _stop.Token;
        _responder = Task.Run(
            () =>
            {
                while (!attached.Task.IsCompleted)
                {
                    if (stop.IsCancellationRequested)
                    {
                        return;
                    }

                    Thread.Sleep(1);
                }

                SoftwareSplitDevice device = attached.Task.Result;
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
                    if (answer(command) is { } a)
                    {
                        int written = chain.WriteWritable([a.Ack, .. a.Reply]);
                        device.Complete(chain, a.UsedLength ?? (uint)written);
                    }
                }
            },
            CancellationToken.None);

        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, options ?? new VirtioNetOptions { OperationMode = OperationMode.Poll });
        return (net, commands);
    }

    private static byte[] Coal(uint packets, uint usecs)
    {
        byte[] reply = new byte[8];
        new NotificationCoalescing(packets, usecs).Write(reply);
        return reply;
    }

    [Fact]
    public void VqGetSendsTheQueueIndexAndReadsTheCoalescingFromTheReplyAfterTheAck()
    {
        var (net, commands) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.VqNotfCoal, c => new Answer(VirtioNetControlCommands.AckOk, Coal(15, 10)));
        using (StopFirst(net))
        {
            NotificationCoalescing coalescing = net.Control.GetQueueCoalescing(1);

            Assert.Equal(new NotificationCoalescing(15, 10), coalescing);
            Command command = Assert.Single(commands);
            Assert.Equal(((byte)VirtioNetControlClass.NotfCoal, VirtioNetControlCommands.NotfCoalVqGet), (command.Class, command.Code));

            // struct virtio_net_ctrl_coal_vq: vq_index and reserved are the driver's; the coal part is device-writable, after the ack.
            Assert.Equal(new byte[] { 1, 0, 0, 0 }, command.Payload);
            Assert.Equal([2u, 4u], command.ReadableLengths);
            Assert.Equal([1u, 8u], command.WritableLengths);
            Assert.Equal(1, net.Control.Queue!.CommandsCompleted);
        }
    }

    [Fact]
    public void AVqGetReplyShorterThanTheStructureIsMisbehaviourAndTheQueueStaysUsable()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.VqNotfCoal, c => new Answer(VirtioNetControlCommands.AckOk, [15, 0, 0, 0]));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetQueueCoalescing(0));

            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
            Assert.Contains("4 bytes", e.Message, StringComparison.Ordinal);
            Assert.True(net.Control.Queue!.IsUsable);
        }
    }

    [Fact]
    public void AUsedLengthLongerThanTheBuffersOfferedIsALie()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.VqNotfCoal, c => new Answer(VirtioNetControlCommands.AckOk, Coal(1, 2), UsedLength: 4096));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetQueueCoalescing(0));

            // The ring itself catches the lie (a used length past the chain's writable buffers) and is latched broken.
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
            Assert.Contains("4096", e.Message, StringComparison.Ordinal);
            Assert.False(net.Control.Queue!.IsUsable);
        }
    }

    [Fact]
    public void NothingPastTheUsedLengthIsCopiedEvenWhenTheDeviceWroteMore()
    {
        // The device writes 16 bytes of reply but reports only 4 of them (plus the ack) as written.
        byte[] written = [.. Enumerable.Repeat((byte)0xAA, 16)];
        var (net, _) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.VqNotfCoal, c => new Answer(VirtioNetControlCommands.AckOk, written, UsedLength: 5));
        using (StopFirst(net))
        {
            byte[] reply = [.. Enumerable.Repeat((byte)0x55, 16)];

            int length = net.Control.Queue!.ExecuteWithReply(VirtioNetControlClass.NotfCoal, VirtioNetControlCommands.NotfCoalVqGet, [0, 0, 0, 0], reply);

            Assert.Equal(4, length);
            Assert.Equal(new byte[] { 0xAA, 0xAA, 0xAA, 0xAA }, reply[..4]);
            Assert.All(reply[4..], b => Assert.Equal(0x55, b));
        }
    }

    [Fact]
    public void AVqGetTheDeviceRejectsFailsAndItsReplyIsIgnored()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.VqNotfCoal, c => new Answer(VirtioNetControlCommands.AckErr, Coal(99, 99)));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetQueueCoalescing(1));

            Assert.Equal(VirtioErrorReason.CommandRejected, e.Reason);
            Assert.Contains("VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET", e.Message, StringComparison.Ordinal);
            Assert.Equal(1, net.Control.Queue!.CommandsRejected);
        }
    }

    [Fact]
    public void AReplyCommandTheDeviceNeverAnswersTimesOutAndTheQueueIsGivenUp()
    {
        var (net, commands) = Open(
            Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.VqNotfCoal,
            _ => null,
            new VirtioNetOptions { OperationMode = OperationMode.Poll, ControlCommandTimeout = TimeSpan.FromMilliseconds(100) });
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetQueueCoalescing(0));
            Assert.Equal(VirtioErrorReason.Timeout, e.Reason);
            Assert.False(net.Control.Queue!.IsUsable);

            VirtioException later = Assert.Throws<VirtioException>(() => net.Control.GetQueueCoalescing(1));
            Assert.Equal(VirtioErrorReason.Timeout, later.Reason);
            Assert.Single(commands);
        }
    }

    [Fact]
    public void VqGetNeedsTheFeatureAndAQueueThatIsSetUp()
    {
        var (net, commands) = Open(Modern | VirtioNetFeatures.CtrlVq, c => new Answer(VirtioNetControlCommands.AckOk, []));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetQueueCoalescing(0));
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
            Assert.Contains("VIRTIO_NET_F_VQ_NOTF_COAL", e.Message, StringComparison.Ordinal);
            Assert.Throws<ArgumentOutOfRangeException>(() => net.Control.GetQueueCoalescing(2));
            Assert.Empty(commands);
        }
    }

    [Fact]
    public void AReplyBufferLargerThanTheQueueHoldsIsRefused()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.CtrlVq, c => new Answer(VirtioNetControlCommands.AckOk, []));
        using (StopFirst(net))
        {
            Assert.Throws<ArgumentException>(() => net.Control.Queue!.ExecuteWithReply(VirtioNetControlClass.Stats, VirtioNetControlCommands.StatsQuery, [], new byte[VirtioNetControlQueue.MaxReplyLength + 1]));
            Assert.Throws<ArgumentException>(() => net.Control.Queue!.ExecuteWithReply(VirtioNetControlClass.Stats, VirtioNetControlCommands.StatsQuery, [], []));
        }
    }

    // ---- VIRTIO_NET_F_DEVICE_STATS ----

    private const ulong Stats = Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.DeviceStats;

    private static byte[] Capabilities(DeviceStatisticsTypes types)
    {
        byte[] reply = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(reply, (ulong)types);
        return reply;
    }

    // A block as the device lays it out: struct virtio_net_stats_reply_hdr, then le64 counters (value = base + i).
    private static byte[] Block(int type, int queue, int counters, ulong first, int? size = null)
    {
        byte[] block = new byte[8 + (8 * counters)];
        block[0] = (byte)type;
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(2), (ushort)queue);
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(6), (ushort)(size ?? block.Length));
        for (int i = 0; i < counters; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(block.AsSpan(8 + (8 * i)), first + (ulong)i);
        }

        return block;
    }

    private static List<(int Queue, DeviceStatisticsTypes Types)> Requests(byte[] payload)
    {
        var list = new List<(int, DeviceStatisticsTypes)>();
        for (int i = 0; i + 16 <= payload.Length; i += 16)
        {
            list.Add((BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(i)), (DeviceStatisticsTypes)BinaryPrimitives.ReadUInt64LittleEndian(payload.AsSpan(i + 8))));
        }

        return list;
    }

    // A device that keeps the given types and answers GET with the blocks asked for, in request order.
    private static Func<Command, Answer?> StatsDevice(DeviceStatisticsTypes supported, Func<byte[], byte[]>? tamper = null) => c =>
    {
        if (c.Class != (byte)VirtioNetControlClass.Stats)
        {
            return new Answer(VirtioNetControlCommands.AckOk, []);
        }

        if (c.Code == VirtioNetControlCommands.StatsQuery)
        {
            return new Answer(VirtioNetControlCommands.AckOk, Capabilities(supported));
        }

        var reply = new List<byte>();
        foreach ((int queue, DeviceStatisticsTypes types) in Requests(c.Payload))
        {
            foreach ((DeviceStatisticsTypes type, int counters) in new[]
            {
                (DeviceStatisticsTypes.RxBasic, 6), (DeviceStatisticsTypes.RxCsum, 4), (DeviceStatisticsTypes.RxGso, 4), (DeviceStatisticsTypes.RxSpeed, 2),
                (DeviceStatisticsTypes.TxBasic, 6), (DeviceStatisticsTypes.TxCsum, 2), (DeviceStatisticsTypes.TxGso, 6), (DeviceStatisticsTypes.TxSpeed, 2),
                (DeviceStatisticsTypes.Cvq, 2),
            })
            {
                if ((types & type) != 0)
                {
                    reply.AddRange(Block(System.Numerics.BitOperations.TrailingZeroCount((ulong)type), queue, counters, (ulong)(1000 * (queue + 1))));
                }
            }
        }

        byte[] bytes = [.. reply];
        return new Answer(VirtioNetControlCommands.AckOk, tamper is null ? bytes : tamper(bytes));
    };

    [Fact]
    public void DeviceStatisticsAskEachQueueForTheSupportedTypesValidForItAndParseTypedBlocks()
    {
        // The device keeps everything; only GUEST_CSUM of the checksum/GSO features is negotiated, so the receive queue
        // is asked for RX_CSUM but not RX_GSO, and the transmit queue for neither TX_CSUM nor TX_GSO.
        var (net, commands) = Open(Stats | VirtioNetFeatures.GuestCsum, StatsDevice(DeviceStatisticsPayloads.Known));
        using (StopFirst(net))
        {
            Assert.True(net.Control.HasDeviceStatistics);
            DeviceStatistics stats = net.Control.GetDeviceStatistics();

            Command[] sent = [.. commands];
            Assert.Equal(2, sent.Length);
            Assert.Equal(VirtioNetControlCommands.StatsQuery, sent[0].Code);
            Assert.Equal([1u, 8u], sent[0].WritableLengths);
            Assert.Equal(VirtioNetControlCommands.StatsGet, sent[1].Code);
            Assert.Equal(
                [
                    (0, DeviceStatisticsTypes.RxBasic | DeviceStatisticsTypes.RxCsum | DeviceStatisticsTypes.RxSpeed),
                    (1, DeviceStatisticsTypes.TxBasic | DeviceStatisticsTypes.TxSpeed),
                    (2, DeviceStatisticsTypes.Cvq),
                ],
                Requests(sent[1].Payload));

            // The reply buffer is exactly the blocks asked for: rx 56 + 40 + 24, tx 56 + 24, cvq 24.
            Assert.Equal([1u, 224u], sent[1].WritableLengths);

            Assert.Equal(DeviceStatisticsPayloads.Known, stats.SupportedTypes);
            Assert.Equal(6, stats.Blocks.Count);
            DeviceStatisticsBlock rx = stats.Find(0, DeviceStatisticsTypes.RxBasic)!;
            Assert.Equal(1001UL, rx["rx_packets"]);
            Assert.Equal(1005UL, rx["rx_drop_overruns"]);
            Assert.Null(rx["tx_packets"]);
            Assert.Equal(1003UL, stats.Find(0, DeviceStatisticsTypes.RxCsum)!["rx_csum_bad"]);
            Assert.Equal(2002UL, stats.Find(1, DeviceStatisticsTypes.TxBasic)!["tx_bytes"]);
            Assert.Equal(["command_num", "ok_num"], stats.Find(2, DeviceStatisticsTypes.Cvq)!.Counters.Select(c => c.Name));
            Assert.Null(stats.Find(1, DeviceStatisticsTypes.TxGso));

            // The capabilities are asked once.
            commands.Clear();
            _ = net.Control.GetDeviceStatistics();
            Assert.Equal([VirtioNetControlCommands.StatsGet], commands.Select(c => c.Code));
        }
    }

    [Fact]
    public void OnlyTypesTheDeviceSupportsAreAskedFor()
    {
        var (net, commands) = Open(Stats | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.Csum, StatsDevice(DeviceStatisticsTypes.TxBasic | (DeviceStatisticsTypes)(1UL << 40)));
        using (StopFirst(net))
        {
            DeviceStatistics stats = net.Control.GetDeviceStatistics();

            // The undocumented bit 40 is dropped; only transmitq1 has a type to ask for.
            Assert.Equal(DeviceStatisticsTypes.TxBasic, stats.SupportedTypes);
            Assert.Equal([(1, DeviceStatisticsTypes.TxBasic)], Requests(commands.Last().Payload));
            Assert.Single(stats.Blocks);
        }
    }

    [Fact]
    public void ABlockOfATypeTheSpecDoesNotDefineIsSkippedByItsSize()
    {
        byte[] Insert(byte[] reply) => [.. Block(7, 0, 3, 5), .. reply, .. Block(40, 9, 1, 5)];
        var (net, _) = Open(Stats, StatsDevice(DeviceStatisticsTypes.RxBasic, Insert));
        using (StopFirst(net))
        {
            // The parser over a reply holding a type-7 block before and a type-40 block after the one asked for.
            var blocks = new List<DeviceStatisticsBlock>();
            byte[] reply = Insert(Block(0, 0, 6, 1));
            DeviceStatisticsPayloads.ParseReply(reply, new Dictionary<int, DeviceStatisticsTypes> { [0] = DeviceStatisticsTypes.RxBasic }, "test", blocks);

            DeviceStatisticsBlock only = Assert.Single(blocks);
            Assert.Equal((DeviceStatisticsTypes.RxBasic, 0), (only.Type, only.QueueIndex));
            Assert.Equal(2UL, only["rx_packets"]);

            // Through the device, the reply buffer offered holds only the block asked for: the device writes what fits, so
            // the rx block after the unknown one is cut short and runs past the reply.
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetDeviceStatistics());
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
        }
    }

    public static TheoryData<string, byte[], string> MalformedReplies => new()
    {
        { "size smaller than the header", Block(0, 0, 6, 1, size: 0), "smaller than its own header" },
        { "size past the reply", Block(0, 0, 6, 1, size: 64), "running past" },
        { "size wrong for the type", [.. Block(0, 0, 6, 1, size: 48), .. new byte[8]], "has size 48" },
        { "a truncated header", [.. Block(0, 0, 6, 1), 1, 2, 3], "too few" },
        { "a queue nobody asked about", Block(0, 4, 6, 1), "not asked for" },
        { "a type nobody asked for", Block(1, 0, 4, 1), "not asked for" },
        { "the same block twice", [.. Block(0, 0, 6, 1), .. Block(0, 0, 6, 1)], "twice" },
    };

    [Theory]
    [MemberData(nameof(MalformedReplies))]
    public void AMalformedStatisticsReplyIsAClearError(string why, byte[] reply, string message)
    {
        var blocks = new List<DeviceStatisticsBlock>();
        VirtioException e = Assert.Throws<VirtioException>(() =>
            DeviceStatisticsPayloads.ParseReply(reply, new Dictionary<int, DeviceStatisticsTypes> { [0] = DeviceStatisticsTypes.RxBasic }, "test", blocks));

        Assert.True(e.Reason == VirtioErrorReason.DeviceMisbehaved, why);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMalformedReplyFromTheDeviceFailsTheCallAndKeepsTheQueueUsable()
    {
        // The device claims its first block is one byte longer than it is: the rest no longer parses.
        byte[] Corrupt(byte[] reply)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(reply.AsSpan(6), 57);
            return reply;
        }

        var (net, _) = Open(Stats, StatsDevice(DeviceStatisticsTypes.RxBasic | DeviceStatisticsTypes.TxBasic, Corrupt));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetDeviceStatistics());
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
            Assert.Contains("VIRTIO_NET_CTRL_STATS_GET", e.Message, StringComparison.Ordinal);
            Assert.True(net.Control.Queue!.IsUsable);
        }
    }

    [Fact]
    public void ACapabilitiesReplyShorterThanItsStructureIsAnError()
    {
        var (net, _) = Open(Stats, c => new Answer(VirtioNetControlCommands.AckOk, [1, 0, 0]));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.QueryDeviceStatisticsTypes());
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, e.Reason);
            Assert.Contains("3 bytes", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ManyQueuesAreAskedForInSeveralCommandsThatEachFitTheReplyBuffer()
    {
        var (net, commands) = Open(
            Stats | VirtioNetFeatures.Mq,
            StatsDevice(DeviceStatisticsTypes.RxBasic | DeviceStatisticsTypes.TxBasic | DeviceStatisticsTypes.RxSpeed | DeviceStatisticsTypes.TxSpeed | DeviceStatisticsTypes.Cvq),
            new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = 64 },
            t =>
            {
                BinaryPrimitives.WriteUInt16LittleEndian(t.Config.AsSpan(VirtioNetConfig.MaxVirtqueuePairsOffset), 64);
                for (int q = 0; q <= 128; q++)
                {
                    t.QueueSizeMax[q] = 64;
                }
            },
            controlIndex: 128);
        using (StopFirst(net))
        {
            DeviceStatistics stats = net.Control.GetDeviceStatistics();

            // 64 pairs × 2 blocks each + the control queue's; 80 bytes per queue, so at most 51 queues per 4096-byte reply.
            Assert.Equal((128 * 2) + 1, stats.Blocks.Count);
            Command[] gets = [.. commands.Where(c => c.Class == (byte)VirtioNetControlClass.Stats && c.Code == VirtioNetControlCommands.StatsGet)];
            Assert.Equal(3, gets.Length);
            Assert.All(gets, g => Assert.InRange(g.WritableLengths[1], 1u, (uint)VirtioNetControlQueue.MaxReplyLength));
            Assert.Equal(2UL + (1000 * 128), stats.Find(127, DeviceStatisticsTypes.TxBasic)!["tx_bytes"]);
            Assert.NotNull(stats.Find(128, DeviceStatisticsTypes.Cvq));
        }
    }

    [Fact]
    public void DeviceStatisticsNeedTheFeatureWhichNeedsTheControlQueue()
    {
        var (net, _) = Open(Modern | VirtioNetFeatures.DeviceStats, c => new Answer(VirtioNetControlCommands.AckOk, []));
        using (StopFirst(net))
        {
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetFeatures.DeviceStats);
            Assert.False(net.Control.HasDeviceStatistics);
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.GetDeviceStatistics());
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
            Assert.Contains("VIRTIO_NET_F_DEVICE_STATS", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void DisablingDeviceStatsInTheOptionsKeepsItOff()
    {
        var (net, _) = Open(Stats, c => new Answer(VirtioNetControlCommands.AckOk, []), new VirtioNetOptions { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioNetFeatures.DeviceStats });
        using (StopFirst(net))
        {
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetFeatures.DeviceStats);
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.CtrlVq);
        }
    }

    // ---- VIRTIO_NET_F_HASH_TUNNEL ----

    private const ulong Tunnel = Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.HashReport | VirtioNetFeatures.HashTunnel;

    private static void SupportTunnels(SoftwareNetTransport transport, uint types) =>
        BinaryPrimitives.WriteUInt32LittleEndian(transport.Config.AsSpan(VirtioNetConfig.SupportedTunnelTypesOffset), types);

    [Fact]
    public void InnerHeaderHashIsSetWithTheTypesTheDeviceSupports()
    {
        // Bit 20 is not documented: the driver ignores it (§5.1.6.4, Inner Header Hash).
        var (net, commands) = Open(Tunnel, c => new Answer(VirtioNetControlCommands.AckOk, []), configure: t => SupportTunnels(t, (uint)(HashTunnelTypes.Vxlan | HashTunnelTypes.Geneve) | (1u << 20)));
        using (StopFirst(net))
        {
            Assert.Equal(HashTunnelTypes.Vxlan | HashTunnelTypes.Geneve, net.Control.SupportedHashTunnelTypes);
            Assert.Equal(HashTunnelTypes.None, net.Control.EnabledHashTunnelTypes);

            net.Control.SetHashTunnelTypes(HashTunnelTypes.Vxlan);

            Command command = Assert.Single(commands);
            Assert.Equal(((byte)VirtioNetControlClass.HashTunnel, VirtioNetControlCommands.HashTunnelSet), (command.Class, command.Code));
            Assert.Equal(new byte[] { 0x10, 0, 0, 0 }, command.Payload);
            Assert.Equal(HashTunnelTypes.Vxlan, net.Control.EnabledHashTunnelTypes);

            net.Control.SetHashTunnelTypes(HashTunnelTypes.None);
            Assert.Equal(new byte[] { 0, 0, 0, 0 }, commands.Last().Payload);
        }
    }

    [Fact]
    public void ATunnelTypeTheDeviceDoesNotSupportIsRefusedBeforeAnyCommand()
    {
        var (net, commands) = Open(Tunnel, c => new Answer(VirtioNetControlCommands.AckOk, []), configure: t => SupportTunnels(t, (uint)HashTunnelTypes.Vxlan | (1u << 20)));
        using (StopFirst(net))
        {
            ArgumentException e = Assert.Throws<ArgumentException>(() => net.Control.SetHashTunnelTypes(HashTunnelTypes.Vxlan | HashTunnelTypes.Nvgre));
            Assert.Contains("Nvgre", e.Message, StringComparison.Ordinal);
            Assert.Throws<ArgumentException>(() => net.Control.SetHashTunnelTypes((HashTunnelTypes)(1u << 20)));
            Assert.Empty(commands);
        }
    }

    [Fact]
    public void AHashTunnelCommandTheDeviceRejectsLeavesTheEnabledTypesUnchanged()
    {
        var (net, _) = Open(Tunnel, c => new Answer(VirtioNetControlCommands.AckErr, []), configure: t => SupportTunnels(t, (uint)HashTunnelTypes.All));
        using (StopFirst(net))
        {
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.SetHashTunnelTypes(HashTunnelTypes.Ipip));
            Assert.Equal(VirtioErrorReason.CommandRejected, e.Reason);
            Assert.Contains("VIRTIO_NET_CTRL_HASH_TUNNEL_SET", e.Message, StringComparison.Ordinal);
            Assert.Equal(HashTunnelTypes.None, net.Control.EnabledHashTunnelTypes);
        }
    }

    [Fact]
    public void HashTunnelOfferedWithoutRssOrHashReportIsNotAcceptedAndItsConfigFieldNotRead()
    {
        // A device that offers HASH_TUNNEL without either feature it requires (§5.1.3.1): the driver must not accept it.
        var (net, _) = Open(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.HashTunnel, c => new Answer(VirtioNetControlCommands.AckOk, []), configure: t => SupportTunnels(t, (uint)HashTunnelTypes.All));
        using (StopFirst(net))
        {
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetFeatures.HashTunnel);
            Assert.Equal(HashTunnelTypes.None, net.Control.SupportedHashTunnelTypes);
            VirtioException e = Assert.Throws<VirtioException>(() => net.Control.SetHashTunnelTypes(HashTunnelTypes.None));
            Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, e.Reason);
        }
    }

}
