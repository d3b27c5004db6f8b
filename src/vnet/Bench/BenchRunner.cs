using System.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Platform;

namespace VirtioNet.Cli.Bench;

/// <summary>
/// Drives one queue pair (or several, a worker thread each) through the zero-copy burst API for a fixed time: the measured loop allocates nothing, takes
/// no lock and never copies payload (transmit frames are written in place, once per buffer). The device's operation mode decides how the receive side
/// waits: poll mode spins on the ring, interrupt mode sleeps in WaitForReceive whenever the receive queue is empty, adaptive
/// mode polls for its budget inside WaitForReceive before it sleeps.
/// </summary>
internal static class BenchRunner
{
    /// <summary>
    /// Runs the bench on the first <paramref name="pairs"/> queue pairs, one worker thread per pair (each pair belongs to
    /// its thread alone, as the driver requires), and sums their figures. With <paramref name="cpus"/>, pair p's worker pins
    /// itself to cpus[p % cpus.Count] (<see cref="ThreadAffinity.PinCurrentThread"/>) before its loop starts.
    /// </summary>
    public static BenchResult Run(VirtioNetDevice net, BenchMode mode, int frameSize, int burst, TimeSpan duration, CancellationToken cancellationToken, int pairs = 1, IReadOnlyList<int>? cpus = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pairs, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pairs, net.Pairs.Count);
        var clock = new RunClock(duration);
        long end = clock.End;
        var figures = new PairFigures[pairs];
        if (pairs == 1 && cpus is null)
        {
            figures[0] = RunPair(net, 0, mode, frameSize, burst, end, cancellationToken);
        }
        else
        {
            var workers = new Thread[pairs];
            for (int pair = 0; pair < pairs; pair++)
            {
                int p = pair;
                workers[p] = new Thread(() =>
                {
                    if (cpus is { Count: > 0 })
                    {
                        ThreadAffinity.PinCurrentThread(cpus[p % cpus.Count]);
                    }

                    figures[p] = RunPair(net, p, mode, frameSize, burst, end, cancellationToken);
                })
                { IsBackground = true, Name = $"bench pair {p}" };
                workers[p].Start();
            }

            foreach (Thread worker in workers)
            {
                worker.Join();
            }
        }

        return new BenchResult
        {
            Mode = mode,
            OperationMode = net.OperationMode,
            FrameSize = frameSize,
            Burst = burst,
            Seconds = clock.Seconds,
            Sent = figures.Sum(f => f.Sent),
            Received = figures.Sum(f => f.Received),
            Kicks = figures.Sum(f => f.Kicks),
            Interrupts = figures.Sum(f => f.Interrupts),
            ReceiveWaits = figures.Sum(f => f.ReceiveWaits),
            CpuSeconds = clock.CpuSeconds,
            AllocatedBytes = figures.Sum(f => f.AllocatedBytes),
        };
    }

    // One pair's loop until 'end' (a Stopwatch timestamp), on the calling thread.
    private static PairFigures RunPair(VirtioNetDevice net, int pair, BenchMode mode, int frameSize, int burst, long end, CancellationToken cancellationToken)
    {
        VirtioNetQueuePair tx = net.Pairs[pair];
        VirtioNetQueuePair rx = tx;
        var lent = new TransmitPacket[burst];
        var received = new ReceivedPacket[burst];
        byte[] template = BenchLoop.Frame(net.MacAddress.Span, frameSize);
        for (int i = 14; i < frameSize; i++)
        {
            template[i] = (byte)i;
        }

        // Per packet only the headers are written (Ethernet, and room for IPv4 and UDP), as DPDK's txonly engine does;
        // the payload bytes stay whatever the buffer held. A full copy per packet would measure memcpy, not the driver.
        ReadOnlySpan<byte> headers = template.AsSpan(0, Math.Min(frameSize, BenchLoop.HeaderBytes));

        long kicksBefore = tx.TransmitStatistics.Notifications + rx.ReceiveStatistics.Notifications;
        long interruptsBefore = rx.ReceiveStatistics.Interrupts;
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        bool interrupts = net.OperationMode != OperationMode.Poll;
        long sent = 0, got = 0, waits = 0;
        long now = Stopwatch.GetTimestamp();
        int spins = 0;
        while (now < end)
        {
            if (mode != BenchMode.Rx)
            {
                int n = tx.AllocateBurst(lent);
                for (int i = 0; i < n; i++)
                {
                    // In place: the 16-byte handle is neither copied nor rebuilt.
                    ref TransmitPacket packet = ref lent[i];
                    headers.CopyTo(packet.Span);
                    packet.Length = frameSize;
                }

                sent += BenchLoop.Transmit(tx, lent, n);
            }

            if (mode != BenchMode.Tx)
            {
                int k = rx.ReceiveBurst(received);
                if (k > 0)
                {
                    for (int i = 0; i < k; i++)
                    {
                        got += received[i].IsContinuation ? 0 : 1;
                    }

                    rx.ReleaseBurst(received.AsSpan(0, k));
                }
                else if (interrupts)
                {
                    // Interrupt mode, as NAPI does it: the queue is empty, so ask the device for a used-buffer
                    // notification and sleep until it comes (or the slice ends); the queue is then drained by polling
                    // again until it is empty. In loopback the frames just sent are what comes back.
                    now = Stopwatch.GetTimestamp();
                    if (now >= end || cancellationToken.IsCancellationRequested)
                    {
                        break;
                    }

                    TimeSpan left = Stopwatch.GetElapsedTime(now, end);
                    net.Pairs[pair].WaitForReceive(left < BenchLoop.SleepSlice ? left : BenchLoop.SleepSlice, CancellationToken.None);
                    waits++;
                }
            }

            // The clock and the cancellation token are read every 64 rounds: both cost more than a round's work at 64 bytes.
            if ((++spins & 63) == 0)
            {
                now = Stopwatch.GetTimestamp();
                if (cancellationToken.IsCancellationRequested)
                {
                    break;
                }
            }
        }

        // Read first: the figure is the loop's alone.
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        return new PairFigures(sent, got, tx.TransmitStatistics.Notifications + rx.ReceiveStatistics.Notifications - kicksBefore, rx.ReceiveStatistics.Interrupts - interruptsBefore, waits, allocated);
    }

    // What one pair's worker counted.
    private readonly record struct PairFigures(long Sent, long Received, long Kicks, long Interrupts, long ReceiveWaits, long AllocatedBytes);
}
