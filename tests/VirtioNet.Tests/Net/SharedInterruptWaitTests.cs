using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Interrupt mode with one waiting worker per queue pair on one shared, level-triggered line, against a software
/// multi-queue device (<see cref="SoftwareSharedLineTransport"/>, not a real device: it lets a test put a frame exactly
/// between the driver's last check and its sleep). One worker holds the line and wakes the others whose queues have work.
/// </summary>
public sealed class SharedInterruptWaitTests : IDisposable
{
    private const int Pairs = 4;
    private const ulong Features = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Mq;

    // How long the test waits for a worker to come back: it comes back at once in a passing test.
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);

    // The workers' own timeout: a lost wake-up leaves a worker asleep far beyond Long, which fails the test.
    private static readonly TimeSpan Forever = TimeSpan.FromHours(1);

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void AFrameWakesOnlyTheWorkerOfThePairItLandedOnAndEveryPairInTurn(bool eventIdx, bool packed)
    {
        using var device = Device.Open(_memory, eventIdx, packed);
        VirtioNetDevice net = device.Net;
        WorkerThread[] waits = [.. Enumerable.Range(0, Pairs).Select(p => StartWaiting(net, p, Forever))];
        WaitUntil(() => Enumerable.Range(0, Pairs).All(net.IsWaitingForReceive) && net.LineHolder >= 0, "every worker waiting and one holding the line");

        // Frames land on the pairs in an order that starts with one that does not hold the line, and ends with it.
        int holder = net.LineHolder;
        int[] order = [.. Enumerable.Range(1, Pairs).Select(i => (holder + i) % Pairs)];
        var woken = new HashSet<int>();
        foreach (int pair in order)
        {
            device.Deliver(pair, Frame(pair));
            Assert.True(waits[pair].Join(Long), $"pair {pair}'s worker was not woken");
            Assert.True(waits[pair].Result);
            woken.Add(pair);

            // The others are still waiting: nobody was woken for a frame that was not theirs.
            Assert.All(Enumerable.Range(0, Pairs).Where(p => !woken.Contains(p)), p => Assert.False(waits[p].IsCompleted, $"pair {p} returned for pair {pair}'s frame"));
        }

        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
        for (int pair = 0; pair < Pairs; pair++)
        {
            Assert.True(net.Pairs[pair].TryReceive(buffer, out int length));
            Assert.Equal(Frame(pair), buffer.AsSpan(0, length).ToArray());
            Assert.False(net.Pairs[pair].TryReceive(buffer, out _));
            Assert.Equal(1, net.Pairs[pair].ReceiveQueue.Statistics.Interrupts);
        }

        // One acknowledgement may cover several frames' interrupts (the holder can find a frame by its scan before the
        // interrupt for it is read), and the last one may still be pending when the holder leaves with its own frame:
        // ProcessEvents, with nobody holding the line, takes it.
        Assert.Equal(1, device.Transport.Line.MaxConcurrentWaiters);
        Assert.Equal(-1, net.LineHolder);
        net.ProcessEvents();
        Assert.False(device.Transport.Line.IsRaised);
        Assert.InRange(net.UsedBufferInterrupts, 1, Pairs);
    }

    // The race of §2.7.10: the frame is published after the driver's last look at the ring and before it sleeps. The
    // device decides to interrupt only if the driver asked for it (flags or used_event), so a driver that re-enabled
    // notifications wrongly, or checked before enabling, would sleep until its timeout.
    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 2)]
    [InlineData(true, 2)]
    public void AFrameThatArrivesBetweenTheLastCheckAndTheSleepStillWakesItsWorker(bool eventIdx, int pair)
    {
        using var device = Device.Open(_memory, eventIdx);
        VirtioNetDevice net = device.Net;

        // Pair 1's worker holds the line; the frame for `pair` is published at the moment the holder goes to sleep.
        WorkerThread holder = StartWaiting(net, 1, Forever);
        WaitUntil(() => net.LineHolder == 1, "pair 1 holding the line");
        WorkerThread waiter = pair == 1 ? holder : StartWaiting(net, pair, Forever);
        WaitUntil(() => net.IsWaitingForReceive(pair), $"pair {pair} waiting");
        int once = 0;
        device.Transport.Line.BeforeWait = () =>
        {
            if (Interlocked.Exchange(ref once, 1) == 0)
            {
                device.Deliver(pair, Frame(pair));
            }
        };

        // Wake the holder with nothing for anyone, so it goes round and sleeps again: that sleep is where the frame lands.
        device.Transport.Signal(InterruptCause.UsedBuffer);
        Assert.True(waiter.Join(Long) && waiter.Result, $"pair {pair}'s worker missed the frame published before its sleep");
        Assert.Equal(1, Volatile.Read(ref once));
        byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
        Assert.True(net.Pairs[pair].TryReceive(buffer, out _));

        if (pair != 1)
        {
            device.Deliver(1, Frame(1));
            Assert.True(holder.Join(Long) && holder.Result);
        }
    }

    // The other side of the race: the device publishes the frame just before the driver's notification request becomes
    // visible, sees notifications still suppressed and sends no interrupt. Only the driver's re-check after enabling
    // (§2.7.10) finds the frame; a driver that slept instead would wait until its timeout.
    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 3)]
    [InlineData(true, 3)]
    [InlineData(false, 1)]
    [InlineData(true, 1)]
    [InlineData(false, 0, true)]
    [InlineData(true, 0, true)]
    [InlineData(true, 1, true)]
    public void AFramePublishedBeforeTheNotificationRequestWasSeenIsFoundByTheReCheck(bool eventIdx, int pair, bool packed = false)
    {
        using var device = Device.Open(_memory, eventIdx, packed);
        VirtioNetDevice net = device.Net;

        // Pair 1 holds the line, so `pair` 0 or 3 is a follower; the frame lands while its worker enables notifications.
        // Pair 1 alone is the line's holder-to-be.
        WorkerThread? holder = pair == 1 ? null : StartWaiting(net, 1, Forever);
        WaitUntil(() => pair == 1 || net.LineHolder == 1, "pair 1 holding the line");
        ulong availableRing = net.Pairs[pair].ReceiveQueue.Queue.DriverArea;
        int delivered = 0;
        _memory.OnSyncForDevice = region =>
        {
            if (region.DeviceAddress == availableRing && net.IsWaitingForReceive(pair) && Interlocked.Exchange(ref delivered, 1) == 0)
            {
                device.Deliver(pair, Frame(pair), interrupt: false);
            }
        };

        WorkerThread waiter = StartWaiting(net, pair, Forever);
        Assert.True(waiter.Join(Long) && waiter.Result, $"pair {pair}'s worker slept past a frame published before its notification request was seen");
        _memory.OnSyncForDevice = null;
        Assert.Equal(1, Volatile.Read(ref delivered));
        Assert.Equal(0, net.Pairs[pair].ReceiveQueue.Statistics.Interrupts);
        if (holder is not null)
        {
            Assert.False(holder.IsCompleted);
            device.Deliver(1, Frame(1));
            Assert.True(holder.Join(Long) && holder.Result);
        }
    }

    [Fact]
    public void WhenTheHolderTimesOutAnotherWorkerTakesTheLineAndIsWokenByItsFrame()
    {
        using var device = Device.Open(_memory, eventIdx: true);
        VirtioNetDevice net = device.Net;
        WorkerThread brief = StartWaiting(net, 0, TimeSpan.FromMilliseconds(200));
        WaitUntil(() => net.LineHolder == 0, "pair 0 holding the line");
        WorkerThread patient = StartWaiting(net, 3, Forever);
        WaitUntil(() => net.IsWaitingForReceive(3), "pair 3 waiting");

        Assert.True(brief.Join(Long));
        Assert.False(brief.Result);
        WaitUntil(() => net.LineHolder == 3, "pair 3 taking the line over");

        device.Deliver(3, Frame(3));
        Assert.True(patient.Join(Long) && patient.Result);
        Assert.Equal(1, net.Pairs[3].ReceiveQueue.Statistics.Interrupts);
    }

    [Fact]
    public void AConfigurationChangeIsHandledOnceByTheHolderWhileTheWorkersKeepWaiting()
    {
        using var device = Device.Open(_memory, eventIdx: false);
        VirtioNetDevice net = device.Net;
        var events = new List<bool>();
        net.LinkStateChanged += (_, e) =>
        {
            lock (events)
            {
                events.Add(e.IsUp);
            }
        };
        WorkerThread[] waits = [.. Enumerable.Range(0, Pairs).Select(p => StartWaiting(net, p, Forever))];
        WaitUntil(() => Enumerable.Range(0, Pairs).All(net.IsWaitingForReceive) && net.LineHolder >= 0, "every worker waiting");

        BinaryPrimitives.WriteUInt16LittleEndian(device.Transport.Inner.Config.AsSpan(VirtioNetConfig.StatusOffset), 0);
        device.Transport.Signal(InterruptCause.ConfigurationChange);
        WaitUntil(() => !net.IsLinkUp, "the link seen down");
        WaitUntil(() => !device.Transport.Line.IsRaised, "the line acknowledged");
        Assert.Equal(1, net.ConfigurationInterrupts);
        Assert.Equal([false], events);
        Assert.All(waits, w => Assert.False(w.IsCompleted));

        for (int pair = 0; pair < Pairs; pair++)
        {
            device.Deliver(pair, Frame(pair));
        }

        Assert.All(waits, w => Assert.True(w.Join(Long)));
        Assert.All(waits, w => Assert.True(w.Result));
    }

    [Fact]
    public void TwoWorkersWaitingForTheSamePairIsRefused()
    {
        using var device = Device.Open(_memory, eventIdx: false);
        VirtioNetDevice net = device.Net;
        WorkerThread first = StartWaiting(net, 2, Forever);
        WaitUntil(() => net.IsWaitingForReceive(2), "pair 2 waiting");
        Assert.Throws<InvalidOperationException>(() => net.Pairs[2].WaitForReceive(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        device.Deliver(2, Frame(2));
        Assert.True(first.Join(Long) && first.Result);
    }

    // Many frames on every pair at random, with the device interrupting only when the driver asked: a lost wake-up
    // leaves a worker asleep until its timeout, which fails the test.
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void FourWorkersReceiveEveryFrameOfTheirOwnPairAndNoWaitTimesOut(bool eventIdx, bool packed)
    {
        const int PerPair = 300;
        using var device = Device.Open(_memory, eventIdx, packed);
        VirtioNetDevice net = device.Net;
        int[] received = new int[Pairs];
        int[] timeouts = new int[Pairs];
        int[] foreign = new int[Pairs];
        WorkerThread[] workers = [.. Enumerable.Range(0, Pairs).Select(pair => WorkerThread.Start(() =>
        {
            byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
            while (received[pair] < PerPair)
            {
                if (!net.Pairs[pair].WaitForReceive(Forever, TestContext.Current.CancellationToken))
                {
                    timeouts[pair]++;
                    return false;
                }

                while (net.Pairs[pair].TryReceive(buffer, out int length))
                {
                    if (buffer[length - 1] != (byte)pair)
                    {
                        foreign[pair]++;
                    }

                    received[pair]++;
                }
            }

            return true;
        }))];

        var random = new Random(1234);
        int[] sent = new int[Pairs];
        while (sent.Any(s => s < PerPair))
        {
            int pair = random.Next(Pairs);
            if (sent[pair] == PerPair || !device.Deliver(pair, Frame(pair)))
            {
                Thread.Yield();
                continue;
            }

            sent[pair]++;
            if (random.Next(8) == 0)
            {
                Thread.Yield();
            }
        }

        Assert.All(workers, w => Assert.True(w.Join(TimeSpan.FromSeconds(60)), $"received [{string.Join(", ", received)}]"));
        Assert.Equal(new int[Pairs], timeouts);
        Assert.Equal(new int[Pairs], foreign);
        Assert.Equal(Enumerable.Repeat(PerPair, Pairs), received);
        Assert.All(net.Pairs.Select(p => p.ReceiveQueue), q => Assert.True(q.Statistics.Interrupts > 0, $"{q.Statistics.Name} was never woken by an interrupt"));
        Assert.Equal(1, device.Transport.Line.MaxConcurrentWaiters);
    }

    // Waiting, being woken (as holder or follower) and taking the frame allocate nothing once warmed up.
    [Fact]
    public void WaitingAndBeingWokenAllocateNothing()
    {
        const int Warmup = 50;
        const int Measured = 300;
        using var device = Device.Open(_memory, eventIdx: true);
        VirtioNetDevice net = device.Net;
        long[] allocated = new long[2];
        int[] done = new int[2];
        WorkerThread[] workers = [.. Enumerable.Range(0, 2).Select(pair => WorkerThread.Start(() =>
        {
            byte[] buffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
            long before = 0;
            for (int i = 0; i < Warmup + Measured; i++)
            {
                if (i == Warmup)
                {
                    before = GC.GetAllocatedBytesForCurrentThread();
                }

                // CancellationToken.None: a cancellable token registers a callback per sleep.
                if (!net.Pairs[pair].WaitForReceive(Forever, CancellationToken.None) || !net.Pairs[pair].TryReceive(buffer, out _))
                {
                    return false;
                }

                Volatile.Write(ref done[pair], i + 1);
            }

            allocated[pair] = GC.GetAllocatedBytesForCurrentThread() - before;
            return true;
        }))];

        // One frame per pair at a time, each after its worker took the previous one, so every wait sleeps and is woken.
        for (int i = 0; i < Warmup + Measured; i++)
        {
            for (int pair = 0; pair < 2; pair++)
            {
                WaitUntil(() => Volatile.Read(ref done[pair]) == i && net.IsWaitingForReceive(pair), $"pair {pair} waiting for frame {i}");
                Assert.True(device.Deliver(pair, Frame(pair)));
            }
        }

        Assert.All(workers, w => Assert.True(w.Join(Long) && w.Result));
        Assert.Equal(new long[2], allocated);
        Assert.All(net.Pairs.Select(p => p.ReceiveQueue).Take(2), q => Assert.True(q.Statistics.Interrupts >= Measured, $"{q.Statistics.Name}: {q.Statistics.Interrupts} interrupt wake-ups"));
    }

    private static byte[] Frame(int pair)
    {
        byte[] frame = new byte[60];
        frame.AsSpan(0, 6).Fill(0xff);
        frame[12] = 0x88;
        frame[13] = 0xb5;
        frame[^1] = (byte)pair;
        return frame;
    }

    private static WorkerThread StartWaiting(VirtioNetDevice net, int pair, TimeSpan timeout) =>
        WorkerThread.Start(() => net.Pairs[pair].WaitForReceive(timeout, TestContext.Current.CancellationToken));

    private static void WaitUntil(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, Long), $"timed out waiting for {what}");

    /// <summary>The driver on the software device, with a software device (split or packed) attached to each receive queue.</summary>
    private sealed class Device : IDisposable
    {
        private readonly ReceiveSide[] _receive;
        private readonly object _deviceLock = new();

        private Device(VirtioNetDevice net, SoftwareSharedLineTransport transport, ReceiveSide[] receive)
        {
            Net = net;
            Transport = transport;
            _receive = receive;
        }

        public VirtioNetDevice Net { get; }

        public SoftwareSharedLineTransport Transport { get; }

        public static Device Open(HeapDmaAllocator memory, bool eventIdx, bool packed = false)
        {
            ulong features = Features | (eventIdx ? VirtioFeatures.EventIdx : 0) | (packed ? VirtioFeatures.RingPacked : 0);
            var transport = new SoftwareSharedLineTransport(new SoftwareNetTransport(features), memory, Pairs);
            VirtioNetDevice net = VirtioNetDevice.Open(transport, memory, new VirtioNetOptions { OperationMode = OperationMode.Interrupt, QueuePairs = Pairs });
            Assert.Equal(Pairs, net.Pairs.Count);
            Assert.Equal(packed ? VirtioNet.Virtqueues.RingLayout.Packed : VirtioNet.Virtqueues.RingLayout.Split, net.RingLayout);
            ReceiveSide[] receive = [.. net.Pairs.Select(p => p.ReceiveQueue).Select(q => packed ? ReceiveSide.Packed(new SoftwarePackedDevice(memory, q.Queue, eventIdx)) : ReceiveSide.Split(new SoftwareSplitDevice(memory, q.Queue, eventIdx)))];
            return new Device(net, transport, receive);
        }

        /// <summary>Writes a frame into the pair's next receive buffer, publishes it, and interrupts if the driver asked (§2.7.7, §2.8.10).</summary>
        public bool Deliver(int pair, byte[] frame, bool interrupt = true)
        {
            lock (_deviceLock)
            {
                ReceiveSide rx = _receive[pair];
                if (!rx.TryPop(out DeviceChain? chain))
                {
                    return false;
                }

                byte[] header = new byte[12];
                BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
                rx.Complete(chain, (uint)chain.WriteWritable([.. header, .. frame]));
                if (rx.TakeInterruptDecision() && interrupt)
                {
                    Transport.Signal(InterruptCause.UsedBuffer);
                }

                return true;
            }
        }

        public void Dispose()
        {
            Net.Dispose();
            Transport.Dispose();
        }
    }

    /// <summary>The device side of one receive queue, split or packed.</summary>
    private sealed class ReceiveSide
    {
        private readonly SoftwareSplitDevice? _split;
        private readonly SoftwarePackedDevice? _packed;

        private ReceiveSide(SoftwareSplitDevice? split, SoftwarePackedDevice? packed)
        {
            _split = split;
            _packed = packed;
        }

        public static ReceiveSide Split(SoftwareSplitDevice device) => new(device, null);

        public static ReceiveSide Packed(SoftwarePackedDevice device) => new(null, device);

        public bool TryPop([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DeviceChain? chain) =>
            _split is not null ? _split.TryPop(out chain) : _packed!.TryPop(out chain);

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
    }
}
