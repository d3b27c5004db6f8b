using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The driver on a platform whose DMA is not cache-coherent, played by <see cref="NonCoherentDmaAllocator"/> (CPU and
/// device each see their own copy of DMA memory; only SyncForDevice / SyncForCpu move bytes between them) with the
/// software devices reading and writing the device's copy. Real traffic over split and packed rings, with indirect
/// descriptors and EVENT_IDX on and off, in every receive mode, through the burst API and the control queue: a sync the
/// driver forgets, or one that covers too little, leaves the device with stale descriptors or frames, or the driver with
/// a stale used ring, event field or ack, and the test fails. A sync that covers too much (cleaning what the device
/// wrote, invalidating what the CPU has not cleaned) is listed in <see cref="NonCoherentDmaAllocator.LostWrites"/>.
/// Ref: virtio v1.2 §2.7.13, §2.8.21 (publish after the descriptors are visible, read the used ring after it is).
/// </summary>
public sealed class NonCoherentDmaTests : IDisposable
{
    private const ulong Base = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status;

    private readonly NonCoherentDmaAllocator _memory = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _responder;

    public void Dispose()
    {
        StopResponder();
        Assert.True(_memory.AllGuardsIntact(), "the driver or a device wrote outside a DMA allocation");
        _memory.Dispose();
        _stop.Dispose();
    }

    public static TheoryData<bool, bool, bool, ReceiveMode> TrafficCases()
    {
        var data = new TheoryData<bool, bool, bool, ReceiveMode>();
        foreach (bool packed in new[] { false, true })
        {
            foreach (bool indirect in new[] { false, true })
            {
                foreach (bool eventIdx in new[] { false, true })
                {
                    foreach (ReceiveMode mode in new[] { ReceiveMode.Mergeable, ReceiveMode.Big, ReceiveMode.Small })
                    {
                        data.Add(packed, indirect, eventIdx, mode);
                    }
                }
            }
        }

        return data;
    }

    public static TheoryData<bool, bool, bool> RingCases()
    {
        var data = new TheoryData<bool, bool, bool>();
        foreach (bool packed in new[] { false, true })
        {
            foreach (bool indirect in new[] { false, true })
            {
                foreach (bool eventIdx in new[] { false, true })
                {
                    data.Add(packed, indirect, eventIdx);
                }
            }
        }

        return data;
    }

    public static TheoryData<bool, bool, bool, bool> QueueCases()
    {
        var data = new TheoryData<bool, bool, bool, bool>();
        foreach (bool packed in new[] { false, true })
        {
            foreach (bool indirect in new[] { false, true })
            {
                foreach (bool eventIdx in new[] { false, true })
                {
                    data.Add(packed, indirect, eventIdx, false);
                    data.Add(packed, indirect, eventIdx, true);
                }
            }
        }

        return data;
    }

    [Fact]
    public void OnlySyncsMoveBytesBetweenTheCpusAndTheDevicesView()
    {
        DmaRegion region = _memory.Allocate(64, 8);
        region.Span[3] = 0x5A;
        Assert.Equal(0, _memory.Map(region.DeviceAddress, 64)[3]);

        _memory.SyncForDevice(region.Slice(0, 3));
        Assert.Equal(0, _memory.Map(region.DeviceAddress, 64)[3]);
        _memory.SyncForDevice(region.Slice(3, 1));
        Assert.Equal(0x5A, _memory.Map(region.DeviceAddress, 64)[3]);

        _memory.Map(region.DeviceAddress + 10, 1)[0] = 0xC3;
        Assert.Equal(0, region.Span[10]);
        _memory.SyncForCpu(region.Slice(8, 4));
        Assert.Equal(0xC3, region.Span[10]);
        Assert.Empty(_memory.LostWrites);

        // Invalidating a CPU write never cleaned, and cleaning over a device write never invalidated, are both recorded.
        region.Span[20] = 1;
        _memory.Map(region.DeviceAddress + 20, 1)[0] = 2;
        _memory.SyncForCpu(region.Slice(16, 8));
        Assert.Single(_memory.LostWrites);
        _memory.Map(region.DeviceAddress + 30, 1)[0] = 3;
        _memory.SyncForDevice(region.Slice(24, 8));
        Assert.Equal(2, _memory.LostWrites.Count);
        _memory.Free(region);
    }

    [Theory]
    [MemberData(nameof(TrafficCases))]
    public void FramesCrossBothWaysIntactWhenEverySyncIsInPlace(bool packed, bool indirect, bool eventIdx, ReceiveMode mode)
        => RunTraffic(packed, indirect, eventIdx, mode, deviceReadsDuringCleans: false);

    [Theory]
    [MemberData(nameof(TrafficCases))]
    public void FramesCrossIntactWhileTheDeviceReadsBetweenTheLinesOfEveryClean(bool packed, bool indirect, bool eventIdx, ReceiveMode mode)
        => RunTraffic(packed, indirect, eventIdx, mode, deviceReadsDuringCleans: true);

    // Receives and sends 600 frames. With deviceReadsDuringCleans the devices pop whatever they see between two lines of
    // every clean, so the driver must have made descriptors and entries visible before the index or head flags that
    // expose them (§2.7.13.3.1, §2.8.21.1.1); the notification counts are then not checked, since a device that is
    // already polling needs none.
    private void RunTraffic(bool packed, bool indirect, bool eventIdx, ReceiveMode mode, bool deviceReadsDuringCleans)
    {
        var transport = Transport(packed, indirect, eventIdx, mode);
        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        using (net)
        {
            Assert.Equal(mode, net.Pairs[0].ReceiveQueue.Mode);
            Assert.Equal(packed, net.ReceiveQueue is PackedVirtqueue);
            var rx = new RingDevice(_memory, net.ReceiveQueue, packed, eventIdx);
            var tx = new RingDevice(_memory, net.TransmitQueue, packed, eventIdx);
            byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
            if (deviceReadsDuringCleans)
            {
                _memory.BetweenLines = () =>
                {
                    rx.PopEarly();
                    tx.PopEarly();
                };
            }

            // More than two laps of every ring, so wrap counters and reused slots are crossed, with lengths up to the maximum.
            for (int i = 0; i < 600; i++)
            {
                byte[] incoming = Frame(FrameLength(i, net.Pairs[0].MaxReceiveFrameLength), i);
                Deliver(rx, incoming, mode);

                // In poll mode the driver asked for no interrupts (the request is in the device's copy only if it cleaned it).
                Assert.False(rx.TakeInterruptDecision(), $"frame {i}: the device sees a stale interrupt request");
                Assert.True(net.Pairs[0].TryReceive(buffer, out int length), $"frame {i}: the driver missed a used buffer");
                Assert.Equal(incoming, buffer.AsSpan(0, length).ToArray());

                int before = transport.NotificationCounts[1];
                byte[] outgoing = Frame(FrameLength(i + 7, net.Pairs[0].MaxTransmitFrameLength), i + 1000);
                Assert.True(net.Pairs[0].TrySend(outgoing));

                // The device asked to hear of every new buffer (avail_event / off_wrap after each pop, or no suppression):
                // a driver reading a stale copy of the device's event fields would skip the notification.
                Assert.True(deviceReadsDuringCleans || before + 1 == transport.NotificationCounts[1], $"frame {i}: no notification");
                Assert.True(tx.TryPop(out DeviceChain? chain), $"frame {i}: the device sees no new descriptor");
                Assert.Equal(outgoing, chain.ReadReadable().AsSpan(12).ToArray());
                tx.Complete(chain, 0);
            }

            // Now the device asks for no notification: the driver must see that in its fresh copy.
            _memory.BetweenLines = null;
            tx.SuppressNotifications();
            int quiet = transport.NotificationCounts[1];
            Assert.True(net.Pairs[0].TrySend(Frame(60, 1)));
            Assert.Equal(quiet, transport.NotificationCounts[1]);
            Assert.True(tx.TryPop(out DeviceChain? last));
            tx.Complete(last, 0);
            Assert.Equal(1, net.Pairs[0].TransmitQueue.Reclaim());

            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Empty(_memory.LostWrites);
        }
    }

    [Theory]
    [MemberData(nameof(QueueCases))]
    public void InterruptRequestsReachTheDeviceAndUsedEntriesReachTheDriver(bool packed, bool indirect, bool eventIdx, bool inOrder)
    {
        var options = new VirtqueueOptions { EventIdx = eventIdx, IndirectDesc = indirect, InOrder = inOrder };
        using IVirtqueue queue = packed ? new PackedVirtqueue(0, 8, _memory, options) : new SplitVirtqueue(0, 8, _memory, options);
        var device = new RingDevice(_memory, queue, packed, eventIdx);
        DmaRegion data = _memory.Allocate(64, 8);
        try
        {
            // A fresh queue's own request is in the device's copy: with EVENT_IDX on a packed ring, the first used slot.
            if (packed)
            {
                Assert.Equal(eventIdx ? PackedRing.RingEventFlagsDesc : PackedRing.RingEventFlagsEnable, device.DriverEventFlags);
            }

            // Disabled, then enabled again: the device must see the second request, not the first.
            queue.DisableInterrupts();
            Assert.True(queue.EnableInterrupts(), "nothing is used yet");
            for (int i = 0; i < 20; i++)
            {
                // Two chains per kick, each two readable buffers (two ring descriptors, or an indirect table) and a
                // writable one; the "driver" here is the test, so it cleans the data it wrote as the net queues do.
                data.Span[..16].Fill((byte)i);
                _memory.SyncForDevice(data.Slice(0, 16));
                VirtqBuffer[] chain =
                [
                    new(data.DeviceAddress, 8, false),
                    new(data.DeviceAddress + 8, 8, false),
                    new(data.DeviceAddress + 32, 32, true),
                ];
                Assert.True(queue.TryAdd(chain, 2 * i));
                Assert.True(queue.TryAdd(chain, (2 * i) + 1));
                queue.KickPrepare();
                Assert.True(device.TryPop(out DeviceChain? first), $"round {i}: the device sees no new descriptor");
                Assert.True(device.TryPop(out DeviceChain? second), $"round {i}: the device sees no second descriptor");
                Assert.Equal(indirect, first.Indirect);
                Assert.Equal(Enumerable.Repeat((byte)i, 16), first.ReadReadable());
                Assert.Equal(Enumerable.Repeat((byte)i, 16), second.ReadReadable());

                // Interrupts are enabled. With EVENT_IDX the driver moves used_event / off_wrap on at each take, with no
                // kick in between here: the device sees the move only if the take cleaned it.
                foreach (DeviceChain popped in new[] { first, second })
                {
                    byte fill = (byte)(i + popped.Head + 100);
                    device.Complete(popped, (uint)popped.WriteWritable(Enumerable.Repeat(fill, 20).ToArray()));
                    Assert.True(device.TakeInterruptDecision(), $"round {i}: the device sees a stale interrupt request");
                    Assert.True(queue.HasUsed);
                    Assert.True(queue.TryTakeUsed(out UsedBuffer used), $"round {i}: the driver missed a used buffer");
                    Assert.Equal(20, used.Length);
                    _memory.SyncForCpu(data.Slice(32, 20));
                    Assert.Equal(Enumerable.Repeat(fill, 20), data.Span.Slice(32, 20).ToArray());
                }
            }

            queue.DisableInterrupts();
            Assert.True(queue.TryAdd([new VirtqBuffer(data.DeviceAddress, 8, false)], 99));
            queue.KickPrepare();
            Assert.True(device.TryPop(out DeviceChain? quiet));
            device.Complete(quiet, 0);
            Assert.False(device.TakeInterruptDecision(), "the device does not see interrupts disabled");

            // Re-enabling reports what the device used meanwhile, which only a fresh copy of the used ring shows.
            Assert.False(queue.EnableInterrupts(), "the driver does not see what was used while interrupts were off");
            Assert.True(queue.TryTakeUsed(out _));
            queue.DisableInterrupts();
            // Enabled again while a chain is in flight, with no kick after: the request reaches the device by its own clean.
            Assert.True(queue.TryAdd([new VirtqBuffer(data.DeviceAddress, 8, false)], 100));
            queue.KickPrepare();
            Assert.True(device.TryPop(out DeviceChain? loud));
            Assert.True(queue.EnableInterrupts());
            device.Complete(loud, 0);
            Assert.True(device.TakeInterruptDecision(), "the device does not see interrupts enabled again");
            Assert.True(queue.TryTakeUsed(out _));
            Assert.Empty(_memory.LostWrites);
        }
        finally
        {
            _memory.Free(data);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NoChainIsVisibleBeforeEverythingItIsMadeOfEvenToADeviceReadingMidClean(bool packed)
    {
        // 64 entries: the available ring and the descriptor ring span several lines. Chains of 1 to 3 direct descriptors,
        // completed newest first, so the heads and slots the device finds differ from lap to lap and a stale one shows.
        using IVirtqueue queue = packed ? new PackedVirtqueue(0, 64, _memory, new VirtqueueOptions()) : new SplitVirtqueue(0, 64, _memory, new VirtqueueOptions());
        var device = new RingDevice(_memory, queue, packed, eventIdx: false);
        DmaRegion data = _memory.Allocate(3 * 64 * 8, 8);
        _memory.BetweenLines = device.PopEarly;
        try
        {
            int token = 0;
            for (int round = 0; round < 40; round++)
            {
                var expected = new List<byte[]>();
                int batch = 3 + (round % 5);
                for (int c = 0; c < batch; c++, token++)
                {
                    int parts = 1 + ((token + round) % 3);
                    var chain = new VirtqBuffer[parts];
                    byte[] content = new byte[parts * 8];
                    for (int p = 0; p < parts; p++)
                    {
                        int at = (((token * 3) + p) % (3 * 64)) * 8;
                        data.Span.Slice(at, 8).Fill((byte)(token + p));
                        content.AsSpan(p * 8, 8).Fill((byte)(token + p));
                        _memory.SyncForDevice(data.Slice(at, 8));
                        chain[p] = new VirtqBuffer(data.DeviceAddress + (ulong)at, 8, false);
                    }

                    Assert.True(queue.TryAdd(chain, token));
                    expected.Add(content);
                }

                queue.KickPrepare();
                var popped = new List<DeviceChain>();
                while (device.TryPop(out DeviceChain? chain))
                {
                    popped.Add(chain);
                }

                Assert.Equal(expected.Count, popped.Count);
                for (int c = 0; c < popped.Count; c++)
                {
                    Assert.Equal(expected[c], popped[c].ReadReadable());
                }

                for (int c = popped.Count - 1; c >= 0; c--)
                {
                    device.Complete(popped[c], 0);
                }

                for (int c = 0; c < popped.Count; c++)
                {
                    Assert.True(queue.TryTakeUsed(out _));
                }
            }

            Assert.Empty(_memory.LostWrites);
        }
        finally
        {
            _memory.BetweenLines = null;
            _memory.Free(data);
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void EveryKickReadsTheDevicesNotificationRequestAfresh(bool packed, bool eventIdx)
    {
        var options = new VirtqueueOptions { EventIdx = eventIdx };
        using IVirtqueue queue = packed ? new PackedVirtqueue(0, 8, _memory, options) : new SplitVirtqueue(0, 8, _memory, options);
        var device = new RingDevice(_memory, queue, packed, eventIdx);
        DmaRegion data = _memory.Allocate(8, 8);
        try
        {
            VirtqBuffer[] chain = [new(data.DeviceAddress, 8, false)];
            for (int round = 0; round < 12; round++)
            {
                // No used buffer is taken between these kicks, so nothing but the kick itself refreshes the driver's copy
                // of avail_event / used.flags / the Device Event Suppression structure.
                Assert.True(queue.TryAdd(chain, 0));
                Assert.True(queue.KickPrepare(), $"round {round}: the first kick was not notified");
                Assert.True(device.TryPop(out DeviceChain? a));
                Assert.True(queue.TryAdd(chain, 1));
                Assert.True(queue.KickPrepare(), $"round {round}: the driver read a stale request and skipped a notification");
                Assert.True(device.TryPop(out DeviceChain? b));
                device.SuppressNotifications();
                Assert.True(queue.TryAdd(chain, 2));
                Assert.False(queue.KickPrepare(), $"round {round}: the driver read a stale request and notified a device that asked for none");
                Assert.True(device.TryPop(out DeviceChain? c));
                device.AllowNotifications();
                foreach (DeviceChain done in new[] { a, b, c })
                {
                    device.Complete(done, 0);
                    Assert.True(queue.TryTakeUsed(out _));
                }
            }

            Assert.Empty(_memory.LostWrites);
        }
        finally
        {
            _memory.Free(data);
        }
    }

    [Theory]
    [MemberData(nameof(RingCases))]
    public void ControlCommandsReachTheDeviceAndTheirAcksReachTheDriver(bool packed, bool indirect, bool eventIdx)
    {
        var transport = Transport(packed, indirect, eventIdx, ReceiveMode.Mergeable);
        transport.OfferedFeatures |= VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlVlan;
        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        var commands = new ConcurrentQueue<byte[]>();
        VirtioNetControlQueue control = net.Control.Queue!;
        var device = new RingDevice(_memory, control.Queue, packed, eventIdx);
        CancellationToken stop = _stop.Token;
        _responder = Task.Run(
            () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (!device.TryPop(out DeviceChain? chain))
                    {
                        Thread.Sleep(1);
                        continue;
                    }

                    byte[] command = chain.ReadReadable();
                    commands.Enqueue(command);

                    // VLAN 7 is refused; everything else acknowledged.
                    bool refuse = command[0] == (byte)VirtioNetControlClass.Vlan && command[2] == 7;
                    device.Complete(chain, (uint)chain.WriteWritable([refuse ? VirtioNetControlCommands.AckErr : VirtioNetControlCommands.AckOk]));
                }
            },
            CancellationToken.None);
        using (new DisposeAction(() =>
        {
            StopResponder();
            net.Dispose();
        }))
        {
            commands.Clear();
            for (int i = 0; i < 12; i++)
            {
                // Alternating commands of different shapes reuse the one command buffer: each must be cleaned anew.
                net.Control.SetPromiscuous(i % 2 == 0);
                net.Control.AddVlan((ushort)(100 + i));
                VirtioException refused = Assert.Throws<VirtioException>(() => net.Control.AddVlan(7));
                Assert.Equal(VirtioErrorReason.CommandRejected, refused.Reason);
            }

            // The first receive-mode change sets every mode (ControlQueueTests), so only the VLAN commands are counted.
            byte[][] seen = [.. commands.Where(c => c[0] == (byte)VirtioNetControlClass.Vlan)];
            Assert.Equal(24, seen.Length);
            for (int i = 0; i < 12; i++)
            {
                Assert.Equal((ushort)(100 + i), BinaryPrimitives.ReadUInt16LittleEndian(seen[2 * i].AsSpan(2)));
                Assert.Equal(7, BinaryPrimitives.ReadUInt16LittleEndian(seen[(2 * i) + 1].AsSpan(2)));
            }

            Assert.Contains(commands, c => c.SequenceEqual(new byte[] { (byte)VirtioNetControlClass.Rx, VirtioNetControlCommands.RxPromisc, 1 }));
            Assert.Contains(commands, c => c.SequenceEqual(new byte[] { (byte)VirtioNetControlClass.Rx, VirtioNetControlCommands.RxPromisc, 0 }));
            Assert.True(control.IsUsable);
            Assert.Equal(12, control.CommandsRejected);
            Assert.Empty(_memory.LostWrites);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheBurstApiHandsOutWhatTheDeviceWroteAndSendsWhatTheCallerWrote(bool packed)
    {
        var transport = Transport(packed, indirect: true, eventIdx: true, ReceiveMode.Mergeable);
        VirtioNetDevice net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        using (net)
        {
            var rx = new RingDevice(_memory, net.ReceiveQueue, packed, eventIdx: true);
            var tx = new RingDevice(_memory, net.TransmitQueue, packed, eventIdx: true);
            VirtioNetReceiveQueue receive = net.Pairs[0].ReceiveQueue;
            VirtioNetTransmitQueue transmit = net.Pairs[0].TransmitQueue;
            var received = new ReceivedPacket[8];
            var lent = new TransmitPacket[4];
            for (int round = 0; round < 150; round++)
            {
                byte[] incoming = Frame(FrameLength(round, net.Pairs[0].MaxReceiveFrameLength), round);
                Deliver(rx, incoming, ReceiveMode.Mergeable);
                int count = receive.ReceiveBurst(received);
                Assert.True(count >= 1, $"round {round}: the driver missed a used buffer");
                Assert.Equal(count, received[0].SegmentCount);
                byte[] gathered = [.. received.Take(count).SelectMany(p => p.Span.ToArray())];
                Assert.Equal(incoming, gathered);

                // The caller may write into a lent receive buffer; releasing it must not leave that write to land later
                // on what the device writes next.
                received[0].Span[0] ^= 0xFF;
                receive.ReleaseBurst(received.AsSpan(0, count));

                int got = transmit.AllocateBurst(lent);
                Assert.Equal(lent.Length, got);
                var frames = new byte[got][];
                for (int i = 0; i < got; i++)
                {
                    frames[i] = Frame(60 + ((round * 13) + (i * 101)) % 1400, (round * 10) + i);
                    frames[i].CopyTo(lent[i].Span);
                    lent[i] = lent[i].WithLength(frames[i].Length);
                }

                Assert.Equal(got, transmit.TransmitBurst(lent.AsSpan(0, got)));
                for (int i = 0; i < got; i++)
                {
                    Assert.True(tx.TryPop(out DeviceChain? chain), $"round {round}: the device sees no new descriptor");
                    Assert.Equal(frames[i], chain.ReadReadable().AsSpan(12).ToArray());
                    tx.Complete(chain, 0);
                }
            }

            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Empty(_memory.LostWrites);
        }
    }

    // The responder must stop before the device's memory is freed, or it would read freed rings.
    private void StopResponder()
    {
        _stop.Cancel();
        _responder?.Wait(TimeSpan.FromSeconds(5));
    }

    private static SoftwareNetTransport Transport(bool packed, bool indirect, bool eventIdx, ReceiveMode mode)
    {
        ulong offered = Base
            | (packed ? VirtioFeatures.RingPacked : 0)
            | (indirect ? VirtioFeatures.IndirectDesc : 0)
            | (eventIdx ? VirtioFeatures.EventIdx : 0)
            | mode switch
            {
                // An MTU of 4000: mergeable packets span three buffers, and without MRG_RXBUF the receive mode is big.
                ReceiveMode.Mergeable => VirtioNetFeatures.MrgRxBuf | VirtioNetFeatures.Mtu,
                ReceiveMode.Big => VirtioNetFeatures.Mtu,
                _ => 0UL,
            };
        var transport = new SoftwareNetTransport(offered);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), 4000);
        return transport;
    }

    // Lengths from the minimum to the maximum, different each round.
    private static int FrameLength(int round, int max) => round % 5 == 4 ? max : 60 + ((round * 397) % (max - 59));

    private static byte[] Frame(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        return frame;
    }

    // Writes one frame behind a 12-byte header: into one chain (small, big), or across as many mergeable buffers as it
    // takes, num_buffers in the first header (§5.1.6.4).
    private static void Deliver(RingDevice rx, byte[] frame, ReceiveMode mode)
    {
        byte[] wire = new byte[12 + frame.Length];
        frame.CopyTo(wire, 12);
        if (mode != ReceiveMode.Mergeable)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain), "the device sees no posted receive buffer");
            rx.Complete(chain, (uint)chain.WriteWritable(wire));
            return;
        }

        var chains = new List<DeviceChain>();
        int placed = 0;
        while (placed < wire.Length)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain), "the device sees no posted receive buffer");
            chains.Add(chain);
            placed += (int)chain.WritableCapacity;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(wire.AsSpan(VirtioNetHeader.NumBuffersOffset), (ushort)chains.Count);
        int offset = 0;
        foreach (DeviceChain chain in chains)
        {
            int written = chain.WriteWritable(wire.AsSpan(offset));
            rx.Complete(chain, (uint)written);
            offset += written;
        }
    }

    /// <summary>A split or packed software device behind one face.</summary>
    private sealed class RingDevice(HeapDmaAllocator memory, IVirtqueue queue, bool packed, bool eventIdx)
    {
        private readonly SoftwareSplitDevice? _split = packed ? null : new SoftwareSplitDevice(memory, queue, eventIdx);
        private readonly SoftwarePackedDevice? _packed = packed ? new SoftwarePackedDevice(memory, queue, eventIdx) : null;

        // Chains popped while the driver was in the middle of a clean, handed out first by TryPop.
        private readonly Queue<DeviceChain> _early = new();

        public bool TryPop([NotNullWhen(true)] out DeviceChain? chain)
            => _early.TryDequeue(out chain) || (_split is not null ? _split.TryPop(out chain) : _packed!.TryPop(out chain));

        // Pops whatever the device's copy shows available right now.
        public void PopEarly()
        {
            while (_split is not null ? _split.TryPop(out DeviceChain? chain) : _packed!.TryPop(out chain))
            {
                _early.Enqueue(chain);
            }
        }

        public void Complete(DeviceChain chain, uint length)
        {
            if (_split is not null)
            {
                _split.Complete(chain, length);
            }
            else
            {
                _packed!.Complete(chain, length);
            }
        }

        public bool TakeInterruptDecision() => _split?.TakeInterruptDecision() ?? _packed!.TakeInterruptDecision();

        // The device's side of notification suppression: avail_event far ahead, VIRTQ_USED_F_NO_NOTIFY, or
        // RING_EVENT_FLAGS_DISABLE.
        public void SuppressNotifications()
        {
            if (_packed is not null)
            {
                _packed.DeviceEventFlags = PackedRing.RingEventFlagsDisable;
            }
            else if (eventIdx)
            {
                _split!.AvailEvent = (ushort)(_split.AvailIdx + 100);
            }
            else
            {
                _split!.NoNotify = true;
            }
        }

        // Undoes SuppressNotifications (with EVENT_IDX on a split ring, the next pop moves avail_event on anyway).
        public void AllowNotifications()
        {
            if (_packed is not null)
            {
                _packed.DeviceEventFlags = eventIdx ? PackedRing.RingEventFlagsDesc : PackedRing.RingEventFlagsEnable;
            }
            else if (!eventIdx)
            {
                _split!.NoNotify = false;
            }
        }

        public ushort DriverEventFlags => _packed!.DriverEventFlags;
    }
}
