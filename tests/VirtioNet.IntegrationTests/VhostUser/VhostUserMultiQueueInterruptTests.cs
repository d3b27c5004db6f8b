using System.Buffers.Binary;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// Interrupt mode with one worker thread per queue pair over vhost-user, against testpmd with 4 queues forwarding with
/// macswap (receive queue k to transmit queue k, so a frame sent on pair k comes back on pair k). The device's
/// "interrupt" is the set of call eventfds, one per vring: one worker at a time polls them all, reads them, and wakes the
/// workers whose receive rings moved.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserMultiQueueInterruptTests
{
    private const int Pairs = 4;
    private const int PerPair = 400;

    // Frames a worker keeps in flight; small enough that it has to wait for the device many times.
    private const int Window = 8;

    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(30);

    [Fact]
    public void FourWorkersEachWaitForTheirOwnPairAndGetEveryFrameTheySentBack()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(Pairs, "macswap");
        using VhostUserNetDevice session = VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, QueuePairs = Pairs },
            new VirtioNetOptions { OperationMode = OperationMode.Interrupt, QueuePairs = Pairs },
            cancellationToken: ct);
        VirtioNetDevice device = session.Device;
        Assert.Equal(OperationMode.Interrupt, device.OperationMode);
        Assert.Equal((Pairs, Pairs), (device.Pairs.Count, device.Control.ActiveQueuePairs));
        long signalsBefore = session.Transport.Interrupt!.RaiseCount;

        var received = new int[Pairs];
        var waits = new int[Pairs];
        var primed = new int[Pairs];
        var errors = new Exception?[Pairs];

        // The primers go out on the workers' own transmit queues from this thread. A transmit queue belongs to one thread
        // at a time, so a worker touches its own only after this thread's send on it has returned (the primer can come
        // back before that send has left the queue).
        var primerSent = Enumerable.Range(0, Pairs).Select(_ => new ManualResetEventSlim(false)).ToArray();
        var workers = Enumerable.Range(0, Pairs).Select(pair => new Thread(() =>
        {
            try
            {
                received[pair] = Exchange(device, pair, primerSent[pair], ref waits[pair], ref primed[pair], ct);
            }
            catch (Exception e)
            {
                errors[pair] = e;
            }
        })
        { IsBackground = true, Name = $"pair {pair}" }).ToList();
        workers.ForEach(t => t.Start());

        // First every worker blocks in WaitForReceive with nothing in flight (one of them on the eventfds); then one frame
        // per pair, sent from here, wakes each of them. Only then do the workers send their own.
        Assert.True(SpinWait.SpinUntil(() => Enumerable.Range(0, Pairs).All(device.IsWaitingForReceive) && device.LineHolder >= 0, WaitLimit), "the workers did not all start waiting");
        // The first primer goes to a pair whose worker does not hold the line: only the holder's dispatch can wake it.
        int holder = device.LineHolder;
        int[] order = [.. Enumerable.Range(1, Pairs).Select(i => (holder + i) % Pairs)];
        Assert.True(device.Pairs[order[0]].TrySend(LoopbackTraffic.BuildFrame(device.MacAddress.Span, Primer(order[0]), device.Pairs[0].MaxTransmitFrameLength)));
        primerSent[order[0]].Set();
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref primed[order[0]]) != 0 || errors[order[0]] is not null, WaitLimit), $"pair {order[0]}'s worker was not woken by the holder (pair {holder})");
        Assert.True(device.WaitersWokenByHolder >= 1, "the worker holding the eventfds did not wake the worker whose queue had the frame");
        foreach (int pair in order.Skip(1))
        {
            Assert.True(device.Pairs[pair].TrySend(LoopbackTraffic.BuildFrame(device.MacAddress.Span, Primer(pair), device.Pairs[0].MaxTransmitFrameLength)));
            primerSent[pair].Set();
        }

        foreach (Thread worker in workers)
        {
            Assert.True(worker.Join(TimeSpan.FromSeconds(120)), $"a worker did not finish: received [{string.Join(", ", received)}]\n{testpmd.Log}");
        }

        for (int pair = 0; pair < Pairs; pair++)
        {
            Assert.True(errors[pair] is null, $"pair {pair}: {errors[pair]}\n{testpmd.Log}");
            Assert.Equal(PerPair, received[pair]);
            Assert.True(device.Pairs[pair].ReceiveQueue.Statistics.Interrupts > 0, $"receiveq{pair + 1}'s worker was never woken by an interrupt ({waits[pair]} waits)");
        }

        // Interrupts, not polling: the backend signalled the call eventfds and the driver read them.
        Assert.True(device.UsedBufferInterrupts > 0);
        Assert.True(session.Transport.Interrupt!.RaiseCount > signalsBefore);
    }

    // The frame that wakes a pair's worker first.
    private static uint Primer(int pair) => ((uint)pair << 16) | 0xffff;

    // Waits for the pair's primer (and for the test thread to be done sending it), then sends PerPair numbered frames on the pair, at most Window in flight, and waits (by interrupt) for each to come
    // back on the same pair; a frame of another pair, or one that comes back twice, fails.
    private static int Exchange(VirtioNetDevice device, int pair, ManualResetEventSlim primerSent, ref int waits, ref int primed, CancellationToken ct)
    {
        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        var outstanding = new HashSet<uint> { Primer(pair) };
        waits++;
        if (!device.Pairs[pair].WaitForReceive(WaitLimit, ct) || !device.Pairs[pair].TryReceive(buffer, out int primerLength)
            || !outstanding.Remove(BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14, primerLength - 14))))
        {
            throw new InvalidOperationException($"pair {pair}: the first frame back was not this pair's primer");
        }

        Volatile.Write(ref primed, 1);

        // The transmit queue is this worker's once the test thread's primer send on it has returned.
        if (!primerSent.Wait(WaitLimit, ct))
        {
            throw new TimeoutException($"pair {pair}: the test thread never finished sending the primer");
        }

        int sent = 0;
        int received = 0;
        while (received < PerPair)
        {
            device.Pairs[pair].Reclaim();
            while (sent < PerPair && outstanding.Count < Window)
            {
                uint sequence = ((uint)pair << 16) | (uint)sent;
                if (!device.Pairs[pair].TrySend(LoopbackTraffic.BuildFrame(device.MacAddress.Span, sequence, device.Pairs[0].MaxTransmitFrameLength)))
                {
                    break;
                }

                outstanding.Add(sequence);
                sent++;
            }

            waits++;
            if (!device.Pairs[pair].WaitForReceive(WaitLimit, ct))
            {
                throw new TimeoutException($"pair {pair}: nothing came back within {WaitLimit.TotalSeconds} s ({received} of {PerPair} received, {outstanding.Count} in flight)");
            }

            while (device.Pairs[pair].TryReceive(buffer, out int length))
            {
                uint sequence = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14, length - 14));
                if (!outstanding.Remove(sequence))
                {
                    throw new InvalidOperationException($"frame 0x{sequence:x} came back on pair {pair}, which did not send it (or came back twice)");
                }

                received++;
            }
        }

        return received;
    }
}
