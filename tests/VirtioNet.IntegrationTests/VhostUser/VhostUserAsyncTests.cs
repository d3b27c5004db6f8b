using System.Buffers.Binary;
using System.Diagnostics;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The queue pair's asynchronous API against DPDK's vhost-user backend: many devices served from one thread without a
/// thread per device and without allocating per wait, a sender woken by the delayed transmit notification when a
/// paused backend drains a full ring, and cancellation that leaves the queues ready for traffic.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserAsyncTests
{
    // IEEE 802 local experimental EtherType: nothing on the path interprets the payload.
    private const ushort ExperimentalEtherType = 0x88b5;

    private static readonly byte[] PeerMac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x31];

    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    public static TheoryData<bool> RingLayouts => [false, true];

    private static VirtioNetOptions InterruptMode(bool packed) => new()
    {
        OperationMode = OperationMode.Interrupt,
        DisabledFeatures = packed ? 0 : VirtioFeatures.RingPacked,
    };

    [Fact]
    public async Task EightDevicesOnOneTestpmdAreDrivenFromOneThreadWithoutAThreadPerDeviceOrAnAllocationPerWait()
    {
        const int Devices = 8;
        const int WarmUp = 64;
        const int Frames = 4000;
        const int Window = 16;
        int threadsBefore = ThreadCount();
        using DpdkTestpmd testpmd = DpdkTestpmd.StartPorts(Devices, "macswap");
        var sessions = new List<VhostUserNetDevice>();
        try
        {
            for (int i = 0; i < Devices; i++)
            {
                // Half split, half packed rings.
                sessions.Add(VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPathOf(i) }, InterruptMode(packed: i % 2 == 1), cancellationToken: TestContext.Current.CancellationToken));
            }

            var run = new SharedRun(Devices);
            using var sampler = new ThreadSampler(run);
            try
            {
                await SingleThreadLoop.RunAsync(
                    loop => Task.WhenAll(sessions.Select((s, i) => DriveAsync(loop, s.Device, i, WarmUp, Frames, Window, run))),
                    Generous);
            }
            catch (TimeoutException e)
            {
                Assert.Fail($"{e.Message}\n{string.Join('\n', sessions.Select(Describe))}\n{testpmd.Log[^Math.Min(3000, testpmd.Log.Length)..]}");
            }

            // Every frame came back, in order and byte for byte (checked as they arrived), on every device.
            for (int i = 0; i < Devices; i++)
            {
                VirtioNetQueuePair pair = sessions[i].Device.Pairs[0];
                Assert.Equal(WarmUp + Frames, pair.ReceiveStatistics.Packets);
                Assert.Equal(WarmUp + Frames, pair.TransmitStatistics.Packets);
            }

            // How many of these waits sleep (and are completed by the dispatcher) depends on how fast testpmd answers: on
            // a quiet machine its answers are often there before the loop comes back to a device, and sometimes no wait
            // sleeps at all. A wait completed by a notification is proven where the test controls it: the paused
            // backend below, and AsyncWaitTests on QEMU. Here: the waits, their thread and their allocations.
            Assert.True(run.SteadyWaits > 100, $"only {run.SteadyWaits} waits in the measured window");

            // Nothing per wait: an allocation per wait would be at least an object header (24 bytes) each. A one-off
            // allocation of the run (a queue growing once, a device finishing) is not a cost per wait.
            Assert.True(run.SteadyBytes < run.SteadyWaits * 8L, $"{run.SteadyBytes} bytes allocated on the loop's thread over {run.SteadyWaits} waits");
            Assert.True(run.WrongThread == 0, $"{run.WrongThread} continuations ran off the loop's thread");

            // No thread per device: the count while the eight devices ran stayed where it was (the dispatcher's one
            // thread came with the first device), and it did not grow during the run.
            (int min, int max) = sampler.Range();
            TestContext.Current.TestOutputHelper?.WriteLine($"{run.SteadyWaits} waits, {run.SteadyBytes} bytes on the loop's thread; threads {threadsBefore} before, {min}..{max} during the run");
            Assert.True(max - min <= 1, $"the thread count moved from {min} to {max} during the run");
            Assert.True(max < threadsBefore + Devices, $"{threadsBefore} threads before, {max} with {Devices} devices");
        }
        finally
        {
            foreach (VhostUserNetDevice session in sessions)
            {
                session.Dispose();
            }
        }
    }

    [Theory]
    [MemberData(nameof(RingLayouts))]
    public async Task ASenderThatFillsTheRingWaitsForRoomAndIsWokenByTheDelayedTransmitNotification(bool packed)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("rxonly");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, InterruptMode(packed), cancellationToken: ct);
        VirtioNetDevice device = session.Device;
        VirtioNetQueuePair pair = device.Pairs[0];
        Assert.NotEqual(0UL, device.NegotiatedFeatures & VirtioFeatures.EventIdx);
        Assert.Equal(packed, device.RingLayout == RingLayout.Packed);
        byte[] frame = Frame(device, 0, 0);

        testpmd.Pause();
        try
        {
            int sent = 0;
            while (pair.TrySend(frame) && sent < 100_000)
            {
                sent++;
            }

            Assert.Equal(0, pair.TransmitSlotsFree);
            long notificationsBefore = pair.TransmitStatistics.Interrupts;
            ValueTask room = pair.WaitForTransmitRoomAsync(ct);
            Assert.False(room.IsCompleted, "room was reported while the backend was paused");

            // The request is the delayed one: the event index about 3/4 of the ring ahead of the last completion.
            VirtqueueState state = device.GetQueueStates()[1];
            Assert.False(state.InterruptsSuppressed);
            if (!packed)
            {
                Assert.Equal(SplitDelayed(state), state.UsedEvent);
            }

            // Still waiting a while later: nothing completes a wait but the device.
            await Task.Delay(200, ct);
            Assert.False(room.IsCompleted, "room was reported while the backend was paused");

            testpmd.Resume();
            await room.AsTask().WaitAsync(Generous, ct);
            Assert.Equal(notificationsBefore + 1, pair.TransmitStatistics.Interrupts);
            Assert.True(pair.TrySend(frame), "no room after the transmit notification");
            Assert.True(device.GetQueueStates()[1].InterruptsSuppressed, "the transmit notification stayed on after the wait");
        }
        finally
        {
            testpmd.Resume();
        }
    }

    [Theory]
    [MemberData(nameof(RingLayouts))]
    public async Task CancellingWaitsMidwayLeavesBothQueuesReadyAndTrafficFlowsAfterwards(bool packed)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, InterruptMode(packed), cancellationToken: ct);
        VirtioNetDevice device = session.Device;
        VirtioNetQueuePair pair = device.Pairs[0];

        // A receive wait with nothing coming, cancelled midway.
        using (var cancellation = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            ValueTask wait = pair.WaitForReceiveAsync(cancellation.Token);
            Assert.False(wait.IsCompleted);
            await cancellation.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await wait);
        }

        Assert.True(device.GetQueueStates()[0].InterruptsSuppressed, "the cancelled wait left receive notifications on");

        // A transmit-room wait on a paused backend, cancelled midway.
        byte[] frame = Frame(device, 0, 0);
        testpmd.Pause();
        try
        {
            while (pair.TrySend(frame))
            {
            }

            using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(ct);
            ValueTask room = pair.WaitForTransmitRoomAsync(cancellation.Token);
            Assert.False(room.IsCompleted);
            cancellation.CancelAfter(50);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await room);
            Assert.True(device.GetQueueStates()[1].InterruptsSuppressed, "the cancelled wait left transmit notifications on");
        }
        finally
        {
            testpmd.Resume();
        }

        // Traffic flows: the ring drains, every frame comes back, and the next waits work.
        byte[] buffer = new byte[pair.MaxReceiveFrameLength];
        int received = 0;
        var clock = Stopwatch.StartNew();
        while (received < 20 && clock.Elapsed < Generous)
        {
            while (pair.TryReceive(buffer, out _))
            {
                received++;
            }

            if (received < 20)
            {
                await pair.WaitForReceiveAsync(ct).AsTask().WaitAsync(Generous, ct);
            }
        }

        Assert.True(received >= 20, $"{received} frames came back after the cancellations");
        for (uint sequence = 1; sequence <= 50; sequence++)
        {
            await pair.SendAsync(Frame(device, 0, sequence), cancellationToken: ct);
        }
    }

    [Fact]
    public async Task SendAsyncAndTheAsyncStreamOfFramesCarryEveryFrameThroughMacswap()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using DpdkTestpmd testpmd = DpdkTestpmd.Start("macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = testpmd.SocketPath }, InterruptMode(packed: false), cancellationToken: ct);
        VirtioNetDevice device = session.Device;
        VirtioNetQueuePair pair = device.Pairs[0];
        const int Count = 300;

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(Generous);
        byte[] buffer = new byte[pair.MaxReceiveFrameLength];
        Task<int> reader = ReadAllAsync(pair, buffer, Count, stop.Token);
        for (uint sequence = 0; sequence < Count; sequence++)
        {
            await pair.SendAsync(Frame(device, 0, sequence), cancellationToken: stop.Token);

            // Keep the backend's forwarding within the receive ring.
            while (sequence - pair.ReceiveStatistics.Packets > 64)
            {
                await Task.Delay(1, stop.Token);
            }
        }

        Assert.Equal(Count, await reader);

        // And one more through ReceiveAsync.
        await pair.SendAsync(Frame(device, 0, Count), cancellationToken: stop.Token);
        ReceivedFrame last = await pair.ReceiveAsync(buffer, stop.Token);
        Assert.Equal(Count, (int)BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(18)));
        Assert.True(last.Length >= 60);
    }

    private static async Task<int> ReadAllAsync(VirtioNetQueuePair pair, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        int next = 0;
        await foreach (ReceivedFrame frame in pair.ReadAllAsync(buffer, cancellationToken))
        {
            Assert.Equal(next, (int)BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(18)));
            Assert.True(frame.Length >= 60);
            if (++next == count)
            {
                break;
            }
        }

        return next;
    }

    // One device's share of the eight-device run, on the loop's thread: take what came back, top the window of frames
    // in flight up again, then await more.
    private static async Task DriveAsync(SingleThreadLoop loop, VirtioNetDevice device, int index, int warmUp, int frames, int window, SharedRun run)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        VirtioNetQueuePair pair = device.Pairs[0];
        int total = warmUp + frames;
        byte[] frame = Frame(device, index, 0);
        byte[] buffer = new byte[pair.MaxReceiveFrameLength];
        int sent = 0;
        int received = 0;
        while (received < total)
        {
            while (pair.TryReceive(buffer, out ReceivedFrame got))
            {
                // macswap: addressed back to this device, its own number and the next sequence number.
                if (got.Length != frame.Length || !buffer.AsSpan(0, 6).SequenceEqual(frame.AsSpan(6, 6))
                    || BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14)) != (uint)index
                    || BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(18)) != (uint)received)
                {
                    run.Fail($"device {index}: frame {received} came back wrong ({got.Length} bytes)");
                }

                received++;
                if (received == warmUp)
                {
                    run.WarmedUp();
                }
            }

            while (sent < total && sent - received < window)
            {
                BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(18), (uint)sent);
                if (!pair.TrySend(frame))
                {
                    break;
                }

                sent++;
            }

            if (received < total)
            {
                await pair.WaitForReceiveAsync(ct);
                run.Waited(Environment.CurrentManagedThreadId == loop.ThreadId);
            }
        }

        run.Finished();
    }

    // A frame to the peer address from the device: the device's number at 14, a sequence number at 18.
    private static byte[] Frame(VirtioNetDevice device, int index, uint sequence)
    {
        byte[] frame = new byte[128];
        PeerMac.CopyTo(frame, 0);
        device.MacAddress.Span.CopyTo(frame.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), ExperimentalEtherType);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(14), (uint)index);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(18), sequence);
        return frame;
    }

    private static string Describe(VhostUserNetDevice session, int index)
    {
        VirtioNetDevice device = session.Device;
        VirtioNetQueuePair pair = device.Pairs[0];
        IReadOnlyList<VirtqueueState> states = device.GetQueueStates();
        return $"device {index}: sent {pair.TransmitStatistics.Packets}, received {pair.ReceiveStatistics.Packets}, notified {pair.ReceiveStatistics.Interrupts}, "
            + $"dispatches {device.AsyncDispatches}, used-buffer interrupts {device.UsedBufferInterrupts}, line raised {session.Transport.Interrupt!.IsRaised}; "
            + $"rx avail {states[0].AvailableIndex} used {states[0].DeviceUsedIndex} last {states[0].LastUsedIndex} suppressed {states[0].InterruptsSuppressed} used_event {states[0].UsedEvent}";
    }

    private static ushort SplitDelayed(VirtqueueState state) =>
        SplitRing.DelayedUsedEvent(state.LastUsedIndex, state.AvailableIndex);

    private static int ThreadCount()
    {
        using var process = Process.GetCurrentProcess();
        return process.Threads.Count;
    }

    // What the eight loops share, all on the loop's thread (no locks needed): the steady-state window opens once every
    // device is past its warm-up and closes when the last finishes (the single thread does not serve the devices evenly,
    // so the first can finish soon after the last warmed up); bytes allocated and waits are counted inside it.
    private sealed class SharedRun(int devices)
    {
        private int _warmedUp;
        private int _finished;
        private long _bytesAtOpen;
        private int _waitsAtOpen;
        private int _waits;
        private string? _failure;
        private volatile bool _open;
        private volatile bool _closed;

        // Read by the sampler's thread.
        public bool Open => _open;

        public bool Closed => _closed;

        public long SteadyBytes { get; private set; } = -1;

        public int SteadyWaits { get; private set; }

        public int WrongThread { get; private set; }

        public void WarmedUp()
        {
            if (++_warmedUp == devices)
            {
                _waitsAtOpen = _waits;
                _open = true;
                _bytesAtOpen = GC.GetAllocatedBytesForCurrentThread();
            }
        }

        public void Waited(bool onLoopThread)
        {
            _waits++;
            WrongThread += onLoopThread ? 0 : 1;
        }

        public void Finished()
        {
            if (++_finished == devices && Open && !Closed)
            {
                SteadyBytes = GC.GetAllocatedBytesForCurrentThread() - _bytesAtOpen;
                SteadyWaits = _waits - _waitsAtOpen;
                _closed = true;
            }

            if (_failure is not null)
            {
                Assert.Fail(_failure);
            }
        }

        public void Fail(string message) => _failure ??= message;
    }

    // Samples the process's thread count every 20 ms from a thread of its own while the steady window is open.
    private sealed class ThreadSampler : IDisposable
    {
        private readonly List<int> _samples = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _thread;
        private readonly SharedRun _run;

        public ThreadSampler(SharedRun run)
        {
            _run = run;
            _thread = new Thread(Sample) { IsBackground = true, Name = "thread sampler" };
            _thread.Start();
        }

        public (int Min, int Max) Range()
        {
            lock (_samples)
            {
                Assert.True(_samples.Count > 0, "the run was over before a sample was taken");
                return (_samples.Min(), _samples.Max());
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _thread.Join();
            _stop.Dispose();
        }

        private void Sample()
        {
            while (!_stop.IsCancellationRequested)
            {
                if (_run.Open && !_run.Closed)
                {
                    int count = ThreadCount();
                    lock (_samples)
                    {
                        _samples.Add(count);
                    }
                }

                _stop.Token.WaitHandle.WaitOne(20);
            }
        }
    }
}
