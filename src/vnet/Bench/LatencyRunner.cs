using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime;
using HdrHistogram;
using VirtioNet.Net;

namespace VirtioNet.Cli.Bench;

/// <summary>
/// Round-trip latency through a peer that sends every frame back (testpmd's macswap, or the UDP peer of a QEMU machine):
/// each frame carries its send time, and the time from handing it to the device to taking it back from the receive
/// ring goes into a histogram. At a fixed <c>rate</c> the frames are paced one at a time, so the figure is the path's
/// own latency; with rate 0 the sender fills the ring as fast as it takes frames, and the figure includes the queueing
/// a loaded ring adds.
/// </summary>
/// <remarks>
/// The measured loop allocates nothing (histogram recording writes into arrays made beforehand) and runs inside a
/// no-GC region, so no collection pause lands in the tail; the result says how many collections happened anyway.
/// Frames sent during the warm-up (the first quarter of the run, at most one second) are not recorded: JIT tiering
/// and the first touches of the rings would otherwise be the tail.
/// </remarks>
internal static class LatencyRunner
{
    // The stamp goes where a UDP payload would start.
    private const int StampOffset = BenchLoop.HeaderBytes;

    // Run id (8 bytes) then send timestamp (8 bytes): a frame that did not come from this run is not counted.
    private const int StampLength = 16;

    /// <summary>The smallest frame that carries a stamp.</summary>
    public const int MinimumFrameSize = StampOffset + StampLength;

    // The no-GC region's budget: the loop allocates nothing, so this only has to cover the runtime's own small needs.
    private const long NoGcBudget = 16L * 1024 * 1024;

    /// <summary>Runs for <paramref name="duration"/> on queue pair 0 and returns the round-trip figures.</summary>
    public static LatencyResult Run(VirtioNetDevice net, int frameSize, int burst, int rate, TimeSpan duration, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frameSize, MinimumFrameSize);
        VirtioNetQueuePair pair = net.Pairs[0];
        var lent = new TransmitPacket[burst];
        var received = new ReceivedPacket[burst];
        byte[] template = BenchLoop.Frame(net.MacAddress.Span, frameSize);
        long runId = BitConverter.ToInt64(Guid.NewGuid().ToByteArray());

        // Nanoseconds from 1 ns to 10 s, three significant digits (0.1% resolution at every magnitude).
        var histogram = new LongHistogram(1, 10_000_000_000L, 3);

        // The first RecordValue allocates (about 1 KiB, once); done here, outside the measured loop.
        histogram.RecordValue(1);
        histogram.Reset();
        bool interrupts = net.OperationMode != OperationMode.Poll;

        // The process's CPU time is read here and after the loop, not inside it.
        var clock = new RunClock(duration);
        long end = clock.End;
        long recordFrom = clock.Start + (long)(Math.Min(duration.TotalSeconds / 4, 1.0) * Stopwatch.Frequency);
        long period = rate > 0 ? Math.Max(1, Stopwatch.Frequency / rate) : 0;
        long nextSend = clock.Start;
        double nanosecondsPerTick = 1e9 / Stopwatch.Frequency;

        // Entering the region collects first; counting starts after it.
        bool noGcRegion = GC.TryStartNoGCRegion(NoGcBudget);
        int gcBefore = GC.CollectionCount(0);

        // Read when the warm-up ends: first calls (tiering, lazily made statics) are not the loop's steady state.
        long allocatedBefore = -1;
        long sent = 0, got = 0, foreign = 0, waits = 0, recordedSent = 0;
        long now = clock.Start;
        while (now < end && !cancellationToken.IsCancellationRequested)
        {
            // Paced: one frame when its time has come (slots missed by a late wake-up are skipped, not sent in a burst,
            // which would measure the queue the burst builds). Loaded: a burst.
            int due = period == 0 ? burst : now >= nextSend ? 1 : 0;
            if (due > 0)
            {
                int n = pair.AllocateBurst(lent.AsSpan(0, due));
                long stamp = Stopwatch.GetTimestamp();
                for (int i = 0; i < n; i++)
                {
                    ref TransmitPacket packet = ref lent[i];
                    Span<byte> span = packet.Span;
                    template.CopyTo(span);
                    BinaryPrimitives.WriteInt64LittleEndian(span[StampOffset..], runId);
                    BinaryPrimitives.WriteInt64LittleEndian(span[(StampOffset + 8)..], stamp);
                    packet.Length = frameSize;
                }

                int queued = BenchLoop.Transmit(pair, lent, n);
                sent += queued;
                recordedSent += stamp >= recordFrom ? queued : 0;
                if (period != 0 && queued > 0)
                {
                    nextSend = Math.Max(nextSend + period, now);
                }
            }

            int k = pair.ReceiveBurst(received);
            now = Stopwatch.GetTimestamp();
            if (allocatedBefore < 0 && now >= recordFrom)
            {
                allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            }

            foreign += Record(received.AsSpan(0, k), runId, recordFrom, now, nanosecondsPerTick, histogram, ref got);
            if (k > 0)
            {
                pair.ReleaseBurst(received.AsSpan(0, k));
            }
            else if (interrupts)
            {
                // Nothing to take: sleep until the device interrupts, or until the next frame is due (paced).
                long until = period == 0 ? end : Math.Min(end, nextSend);
                if (until > now)
                {
                    TimeSpan left = Stopwatch.GetElapsedTime(now, until);
                    pair.WaitForReceive(left < BenchLoop.SleepSlice ? left : BenchLoop.SleepSlice, CancellationToken.None);
                    waits++;
                    now = Stopwatch.GetTimestamp();
                }
            }
        }

        // Frames still in flight when the window closed: give them a bounded moment, so "lost" means lost.
        long drainEnd = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        while (got < recordedSent && Stopwatch.GetTimestamp() < drainEnd)
        {
            int k = pair.ReceiveBurst(received);
            now = Stopwatch.GetTimestamp();
            _ = Record(received.AsSpan(0, k), runId, recordFrom, now, nanosecondsPerTick, histogram, ref got);

            if (k > 0)
            {
                pair.ReleaseBurst(received.AsSpan(0, k));
            }
        }

        long allocated = allocatedBefore < 0 ? 0 : GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        if (noGcRegion && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
        {
            GC.EndNoGCRegion();
        }

        return new LatencyResult
        {
            Seconds = clock.Seconds,
            CpuSeconds = clock.CpuSeconds,
            OperationMode = net.OperationMode,
            FrameSize = frameSize,
            Rate = rate,
            Sent = sent,
            Measured = recordedSent,
            Returned = got,
            Foreign = foreign,
            ReceiveWaits = waits,
            Collections = GC.CollectionCount(0) - gcBefore,
            NoGcRegion = noGcRegion,
            AllocatedBytes = allocated,
            P50 = histogram.GetValueAtPercentile(50),
            P99 = histogram.GetValueAtPercentile(99),
            P999 = histogram.GetValueAtPercentile(99.9),
            Max = histogram.GetMaxValue(),
            Mean = histogram.TotalCount == 0 ? 0 : histogram.GetMean(),
        };
    }

    // Records the round trip of every frame of the burst that carries this run's stamp from after the warm-up (counted in
    // got); returns how many frames did not carry the stamp.
    private static long Record(ReadOnlySpan<ReceivedPacket> burst, long runId, long recordFrom, long now, double nanosecondsPerTick, LongHistogram histogram, ref long got)
    {
        long foreign = 0;
        foreach (ref readonly ReceivedPacket packet in burst)
        {
            ReadOnlySpan<byte> frame = packet.Span;
            if (packet.IsContinuation || frame.Length < MinimumFrameSize || BinaryPrimitives.ReadInt64LittleEndian(frame[StampOffset..]) != runId)
            {
                foreign++;
                continue;
            }

            long stamp = BinaryPrimitives.ReadInt64LittleEndian(frame[(StampOffset + 8)..]);
            if (stamp >= recordFrom && stamp <= now)
            {
                histogram.RecordValue(Math.Max(1, (long)((now - stamp) * nanosecondsPerTick)));
                got++;
            }
        }

        return foreign;
    }
}
