using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using VirtioNet.Transports;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// <see cref="OperationMode.Adaptive"/>: a receive wait polls for a budget, then arms the notification and sleeps, and
/// the budget follows what the waits find. Against a software device behind one level-triggered line
/// (<see cref="SoftwareSharedLineTransport"/>, not a real device: it lets the test decide exactly when a frame lands).
/// Behaviour only, never time: the budget is counted in looks, and every wait the test makes is bounded.
/// </summary>
public sealed class AdaptiveInterruptTests : IDisposable
{
    private const ulong Features = VirtioFeatures.Version1 | VirtioFeatures.EventIdx | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf;

    // How long the test waits for the worker: it comes back at once in a passing test.
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);

    // The worker's own timeout: a lost wake-up leaves it asleep far beyond Long, which fails the test.
    private static readonly TimeSpan Forever = TimeSpan.FromHours(1);

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    [Fact]
    public void AFrameAlreadyThereIsFoundByPollingWithoutArmingOrSleeping()
    {
        using var device = new Device(_memory, budget: 64);
        device.Deliver(Frame(1), interrupt: false);

        Assert.True(device.Net.Pairs[0].WaitForReceive(Long, TestContext.Current.CancellationToken));
        AdaptivePolling tuner = device.Tuner;
        Assert.Equal((1, 0), (tuner.Hits, tuner.Arms));
        Assert.Equal(0, device.Transport.Line.Waits);
        Assert.Equal(Frame(1), device.ReceiveOne());
        Assert.Equal(0, device.Net.Pairs[0].ReceiveQueue.Statistics.Interrupts);
    }

    [Fact]
    public void AnEmptyQueueIsPolledForTheBudgetThenArmedAndTheDevicesInterruptWakesTheWorker()
    {
        using var device = new Device(_memory, budget: 64);
        VirtioNetDevice net = device.Net;
        var worker = WorkerThread.Start(() => net.Pairs[0].WaitForReceive(Forever, CancellationToken.None));

        // The worker registers as a waiter only after its budget is spent and it asked the device for a notification.
        WaitUntil(() => net.IsWaitingForReceive(0) && device.Transport.Line.WaitersInside > 0, "the worker asleep on the line");
        Assert.Equal((0, 1), (device.Tuner.Hits, device.Tuner.Arms));
        Assert.True(device.Deliver(Frame(2), interrupt: true), "the device was not asked for a notification before the worker slept");

        Assert.True(worker.Join(Long) && worker.Result);
        Assert.Equal(Frame(2), device.ReceiveOne());
        Assert.Equal(1, net.Pairs[0].ReceiveQueue.Statistics.Interrupts);
    }

    [Fact]
    public void WakeUpsThatFindOneFrameShrinkTheBudgetAndFramesFoundByPollingGrowItBack()
    {
        using var device = new Device(_memory, budget: 256);
        VirtioNetDevice net = device.Net;
        AdaptivePolling tuner = device.Tuner;
        Assert.Equal(256, tuner.Budget);

        // Sparse traffic: every wait spends its budget and sleeps, and each wake-up finds one frame.
        for (int i = 0; i < 6; i++)
        {
            var worker = WorkerThread.Start(() => net.Pairs[0].WaitForReceive(Forever, CancellationToken.None));
            WaitUntil(() => net.IsWaitingForReceive(0) && device.Transport.Line.WaitersInside > 0, $"wait {i} asleep on the line");
            Assert.True(device.Deliver(Frame(i), interrupt: true));
            Assert.True(worker.Join(Long) && worker.Result);
            Assert.Equal(Frame(i), device.ReceiveOne());
        }

        Assert.Equal(6, tuner.Arms);
        Assert.Equal(tuner.MinimumBudget, tuner.Budget);
        Assert.Equal(16, tuner.MinimumBudget);

        // Dense traffic: the frame is there by the time the worker looks, so the budget doubles back to its maximum.
        for (int i = 0; i < 5; i++)
        {
            device.Deliver(Frame(i), interrupt: false);
            Assert.True(net.Pairs[0].WaitForReceive(Long, CancellationToken.None));
            Assert.Equal(Frame(i), device.ReceiveOne());
        }

        Assert.Equal(5, tuner.Hits);
        Assert.Equal(256, tuner.Budget);
    }

    [Fact]
    public void AWakeUpThatFindsABurstPiledUpGrowsTheBudgetAndOneWithAFrameOrTwoShrinksIt()
    {
        var tuner = new AdaptivePolling(512);
        tuner.Armed(packets: 1000);
        Assert.Equal(256, tuner.Budget);

        // The worker took a burst's worth after the wake-up: it should have kept polling.
        Assert.Equal(512, tuner.BeginWait(1000 + AdaptivePolling.DenseWakeup));
        tuner.Armed(packets: 2000);
        Assert.Equal(256, tuner.Budget);

        // One frame: the sleep was worth it; in between: left alone.
        Assert.Equal(128, tuner.BeginWait(2001));
        tuner.Armed(packets: 3000);
        Assert.Equal(64, tuner.BeginWait(3010));
        Assert.Equal(64, tuner.BeginWait(3010));
        for (int i = 0; i < 10; i++)
        {
            tuner.Armed(packets: 0);
        }

        Assert.Equal(32, tuner.Budget);
    }

    // Waiting (polling, or arming, sleeping and being woken) and taking the frame allocate nothing once warmed up.
    [Fact]
    public void AdaptiveWaitsAllocateNothingWhetherPollingFindsTheFrameOrAnInterruptBringsIt()
    {
        const int Warmup = 20;
        const int Measured = 100;
        using var device = new Device(_memory, budget: 8);
        VirtioNetDevice net = device.Net;
        long allocated = -1;
        int done = 0;
        var worker = WorkerThread.Start(
            () =>
            {
                var packets = new ReceivedPacket[8];
                long before = 0;
                for (int i = 0; i < Warmup + Measured; i++)
                {
                    if (i == Warmup)
                    {
                        before = GC.GetAllocatedBytesForCurrentThread();
                    }

                    if (!net.Pairs[0].WaitForReceive(Forever, CancellationToken.None))
                    {
                        return false;
                    }

                    int n = net.Pairs[0].ReceiveBurst(packets);
                    net.Pairs[0].ReleaseBurst(packets.AsSpan(0, n));
                    Volatile.Write(ref done, done + n);
                }

                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                return true;
            });

        // Odd frames land while the worker sleeps (an interrupt brings them); even ones before it looks (polling finds them).
        for (int i = 0; i < Warmup + Measured; i++)
        {
            if (i % 2 == 1)
            {
                WaitUntil(() => Volatile.Read(ref done) == i && net.IsWaitingForReceive(0) && device.Transport.Line.WaitersInside > 0, $"the worker asleep before frame {i}");
                Assert.True(device.Deliver(Frame(i), interrupt: true));
            }
            else
            {
                WaitUntil(() => Volatile.Read(ref done) == i, $"frame {i - 1} taken");
                device.Deliver(Frame(i), interrupt: true);
            }
        }

        Assert.True(worker.Join(Long) && worker.Result);
        Assert.Equal(0, allocated);
        Assert.True(device.Tuner.Arms >= Measured / 2, $"{device.Tuner.Arms} waits armed the notification");
    }

    [Fact]
    public void AdaptiveModeNeedsAnInterruptLineAndABudgetOfAtLeastOneLook()
    {
        var transport = new SoftwareNetTransport(Features);
        VirtioException e = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Adaptive }));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, e.Reason);
        Assert.Contains("adaptive mode was asked for", e.Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentOutOfRangeException>(() => new VirtioNetOptions { OperationMode = OperationMode.Adaptive, BusyPollBudget = 0 }.Validate());
    }

    private static byte[] Frame(int seed)
    {
        byte[] frame = new byte[60];
        frame.AsSpan(0, 6).Fill(0xff);
        frame[12] = 0x88;
        frame[13] = 0xb5;
        frame[^1] = (byte)seed;
        return frame;
    }

    private static void WaitUntil(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, Long), $"timed out waiting for {what}");

    /// <summary>The driver in adaptive mode on a one-pair software device, with the device side of its receive queue.</summary>
    private sealed class Device : IDisposable
    {
        private readonly SoftwareSplitDevice _rx;
        private readonly object _deviceLock = new();

        public Device(HeapDmaAllocator memory, int budget)
        {
            Transport = new SoftwareSharedLineTransport(new SoftwareNetTransport(Features), memory, pairs: 1);
            Net = VirtioNetDevice.Open(Transport, memory, new VirtioNetOptions { OperationMode = OperationMode.Adaptive, BusyPollBudget = budget });
            _rx = new SoftwareSplitDevice(memory, Net.Pairs[0].ReceiveQueue.Queue, eventIdx: true);
        }

        public VirtioNetDevice Net { get; }

        public SoftwareSharedLineTransport Transport { get; }

        public AdaptivePolling Tuner => Net.AdaptivePollingOf(0)!;

        /// <summary>Writes a frame into the next receive buffer and publishes it; interrupts if asked to and the driver asked (§2.7.7).</summary>
        public bool Deliver(byte[] frame, bool interrupt)
        {
            lock (_deviceLock)
            {
                Assert.True(_rx.TryPop(out DeviceChain? chain));
                byte[] header = new byte[12];
                BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
                _rx.Complete(chain, (uint)chain.WriteWritable([.. header, .. frame]));
                bool wanted = _rx.TakeInterruptDecision();
                if (wanted && interrupt)
                {
                    Transport.Signal(InterruptCause.UsedBuffer);
                }

                return wanted;
            }
        }

        public byte[] ReceiveOne()
        {
            byte[] buffer = new byte[Net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(Net.Pairs[0].TryReceive(buffer, out int length));
            return buffer.AsSpan(0, length).ToArray();
        }

        public void Dispose()
        {
            Net.Dispose();
            Transport.Dispose();
        }
    }
}
