using System.Buffers.Binary;
using System.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Net.FlowControl;
using VirtioNet.Net.Vlan;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The driver's software flow control on a real data path: testpmd with 4 queues forwarding with macswap (receive queue
/// k to transmit queue k, frames otherwise untouched), so a frame comes back on the pair it left on. 802.1p priorities
/// choose the transmit pair through <see cref="VirtioNetControl.PriorityMap"/>, and a pair's token bucket lets exactly
/// what it holds reach the backend. Virtio has neither (no pause frames, no queue shaping): this is the driver's own.
/// </summary>
[Trait("Peer", "Dpdk")]
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserFlowControlTests
{
    private const int Pairs = 4;
    private const ushort VlanId = 100;
    private const int PerPriority = 12;

    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(20);

    private static VhostUserNetDevice Open(DpdkTestpmd testpmd) =>
        VhostUserNetDevice.Open(
            new VhostUserOptions { SocketPath = testpmd.SocketPath, QueuePairs = Pairs },
            new VirtioNetOptions { OperationMode = OperationMode.Poll, QueuePairs = Pairs },
            cancellationToken: TestContext.Current.CancellationToken);

    [Fact]
    public void EachPriorityLeavesOnThePairItsMapNamesAndComesBackTaggedThere()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(Pairs, "macswap");
        using VhostUserNetDevice session = Open(testpmd);
        VirtioNetDevice device = session.Device;
        Assert.Equal(Pairs, device.Control.ActiveQueuePairs);

        // The default map spreads the eight priorities over the active pairs; then one that reverses and skews them.
        PriorityQueueMap spread = device.Control.PriorityMap;
        Assert.Equal(Pairs, spread.QueuePairs);
        Assert.Equal(Pairs, spread.ToList().Distinct().Count());
        SendEveryPriorityAndCheckWhereItCameBack(device, spread, round: 0, testpmd);

        var skewed = new PriorityQueueMap([3, 3, 3, 2, 2, 1, 0, 0], Pairs);
        device.Control.PriorityMap = skewed;
        SendEveryPriorityAndCheckWhereItCameBack(device, skewed, round: 1, testpmd);
    }

    [Fact]
    public void APairsTokenBucketLetsThroughExactlyWhatItHoldsAndRefillsWithItsClock()
    {
        using DpdkTestpmd testpmd = DpdkTestpmd.StartMultiQueue(Pairs, "macswap");
        using VhostUserNetDevice session = Open(testpmd);
        VirtioNetDevice device = session.Device;

        const int FrameLength = 500;
        const int Rate = 10_000;               // bytes per second of the test's clock
        var clock = new ManualClock();
        var bucket = new TokenBucket(Rate, burst: 6 * FrameLength, clock);
        const int Limited = 1;
        device.Pairs[Limited].RateLimit = bucket;
        Assert.Same(bucket, device.Pairs[Limited].RateLimit);

        // Twenty frames offered on the limited pair, twenty on an unlimited one, with the clock standing still.
        int passed = OfferFrames(device, Limited, 20, FrameLength, first: 0);
        int unlimited = OfferFrames(device, 0, 20, FrameLength, first: 0);
        Assert.Equal(6, passed);
        Assert.Equal(20, unlimited);
        Assert.Equal(14, bucket.Throttled);
        Assert.Equal(6, device.Pairs[Limited].TransmitQueue.Statistics.Packets);

        // What passed reached the backend and came back on its own pair; nothing refused was queued.
        Assert.Equal(6, CollectSequences(device, Limited, 6, testpmd).Count);
        Assert.Equal(20, CollectSequences(device, 0, 20, testpmd).Count);

        // A quarter second of the bucket's clock buys 2500 bytes: five 500-byte frames, and the sixth waits.
        clock.Advance(TimeSpan.FromMilliseconds(250));
        Assert.Equal(5, OfferFrames(device, Limited, 6, FrameLength, first: 100));
        Assert.Equal(5, CollectSequences(device, Limited, 5, testpmd).Count);

        // A long idle period fills the bucket only up to its burst: six frames again, not twenty.
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(6, OfferFrames(device, Limited, 20, FrameLength, first: 150));
        Assert.Equal(6, CollectSequences(device, Limited, 6, testpmd).Count);
        Assert.Equal(17, device.Pairs[Limited].TransmitQueue.Statistics.Packets);

        // Removing the limit lets everything through again.
        device.Pairs[Limited].RateLimit = null;
        Assert.Equal(20, OfferFrames(device, Limited, 20, FrameLength, first: 200));
        Assert.Equal(20, CollectSequences(device, Limited, 20, testpmd).Count);
    }

    // Sends PerPriority tagged frames of each priority through TrySendByPriority, then receives on every pair and checks
    // that each came back on the pair `map` names for its priority, with its tag (stripped and reported by the driver).
    private static void SendEveryPriorityAndCheckWhereItCameBack(VirtioNetDevice device, PriorityQueueMap map, int round, DpdkTestpmd testpmd)
    {
        long[] sentBefore = [.. device.Pairs.Select(p => p.TransmitQueue).Select(q => q.Statistics.Packets)];
        int expectedTotal = PriorityQueueMap.PriorityCount * PerPriority;
        var expectedPerPair = new int[Pairs];
        for (int priority = 0; priority < PriorityQueueMap.PriorityCount; priority++)
        {
            var tag = new VlanTag(VlanId, priority: (byte)priority);
            for (int i = 0; i < PerPriority; i++)
            {
                uint sequence = ((uint)round << 24) | ((uint)priority << 16) | (uint)i;
                byte[] frame = LoopbackTraffic.BuildFrame(device.MacAddress.Span, sequence, 1000);
                var clock = Stopwatch.StartNew();
                while (!device.TrySendByPriority(frame, tag))
                {
                    Assert.True(clock.Elapsed < WaitLimit, $"priority {priority}: the transmit ring of pair {map.QueueFor(priority)} stayed full");
                    device.Pairs[map.QueueFor(priority)].Reclaim();
                }

                expectedPerPair[map.QueueFor(priority)]++;
            }
        }

        for (int pair = 0; pair < Pairs; pair++)
        {
            Assert.Equal(expectedPerPair[pair], device.Pairs[pair].TransmitQueue.Statistics.Packets - sentBefore[pair]);
        }

        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        int received = 0;
        var wait = Stopwatch.StartNew();
        while (received < expectedTotal)
        {
            Assert.True(wait.Elapsed < WaitLimit, $"round {round}: {received} of {expectedTotal} frames came back.\n{testpmd.Log}");
            bool any = false;
            for (int pair = 0; pair < Pairs; pair++)
            {
                device.Pairs[pair].Reclaim();
                while (device.Pairs[pair].TryReceive(buffer, out int length, out VlanTag? tag))
                {
                    any = true;
                    uint sequence = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14, length - 14));
                    int priority = (int)((sequence >> 16) & 0xff);
                    Assert.Equal((uint)round, sequence >> 24);
                    Assert.True(tag is { } t && t.Id == VlanId && t.Priority == priority, $"frame 0x{sequence:x} came back with tag {tag?.ToString() ?? "none"}");
                    Assert.True(map.QueueFor(priority) == pair, $"priority {priority} (frame 0x{sequence:x}) came back on pair {pair}; the map names pair {map.QueueFor(priority)}");
                    received++;
                }
            }

            if (!any)
            {
                Thread.Sleep(1);
            }
        }
    }

    // Offers `count` frames of `length` bytes on `pair` through the rate-limited send; returns how many were taken.
    private static int OfferFrames(VirtioNetDevice device, int pair, int count, int length, int first)
    {
        int taken = 0;
        for (int i = 0; i < count; i++)
        {
            byte[] frame = LoopbackTraffic.BuildFrame(device.MacAddress.Span, ((uint)pair << 16) | (uint)(first + i), 1514);
            Array.Resize(ref frame, length);
            taken += device.Pairs[pair].TrySend(frame) ? 1 : 0;
        }

        return taken;
    }

    // Receives `count` frames on `pair` (and checks none arrives on another pair meanwhile); returns their sequences.
    private static HashSet<uint> CollectSequences(VirtioNetDevice device, int pair, int count, DpdkTestpmd testpmd)
    {
        var sequences = new HashSet<uint>();
        byte[] buffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        var wait = Stopwatch.StartNew();
        while (sequences.Count < count)
        {
            Assert.True(wait.Elapsed < WaitLimit, $"pair {pair}: {sequences.Count} of {count} frames came back.\n{testpmd.Log}");
            device.Pairs[pair].Reclaim();
            if (!device.Pairs[pair].TryReceive(buffer, out int length))
            {
                Thread.Sleep(1);
                continue;
            }

            uint sequence = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(14, length - 14));
            Assert.Equal((uint)pair, sequence >> 16);
            Assert.True(sequences.Add(sequence), $"frame 0x{sequence:x} came back twice");
        }

        // Nothing more than what passed: a short look for stragglers on the pair.
        Thread.Sleep(50);
        Assert.False(device.Pairs[pair].TryReceive(buffer, out _), $"pair {pair}: more frames came back than were let through");
        return sequences;
    }

    /// <summary>A clock the test moves by hand (the bucket's arithmetic is exact, so no wall-clock time is involved).</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _now = 1;

        public override long TimestampFrequency => 1_000_000;

        public override long GetTimestamp() => _now;

        public void Advance(TimeSpan by) => _now += (long)(by.TotalSeconds * TimestampFrequency);
    }
}
