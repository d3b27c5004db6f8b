using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.FlowControl;
using VirtioNet.Net.Vlan;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Every send entry of a queue pair, at every level, behaves alike: the pair's rate limit, its 802.1Q tag insertion
/// and automatic recovery from a ring the device broke. Against a software device (<see cref="SoftwareNetTransport"/>
/// and <see cref="SoftwareSplitDevice"/>, not a real one): a used id past the ring is a lie no real peer tells on demand.
/// </summary>
public sealed class SendEntryConsistencyTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    /// <summary>The send entries, by level: each sends one frame and says whether the pair took it.</summary>
    public static TheoryData<string> Entries => ["copying", "burst"];

    private static bool Send(string entry, VirtioNetQueuePair pair, byte[] frame)
    {
        if (entry == "copying")
        {
            return pair.TrySend(frame);
        }

        var lent = new TransmitPacket[1];
        if (pair.AllocateBurst(lent) == 0)
        {
            return false;
        }

        frame.CopyTo(lent[0].Span);
        lent[0] = lent[0].WithLength(frame.Length);
        if (pair.TransmitBurst(lent, out _) == 1)
        {
            return true;
        }

        pair.FreeBurst(lent);
        return false;
    }

    private static byte[] Frame(int length)
    {
        byte[] frame = new byte[length];
        for (int i = 0; i < length; i++)
        {
            frame[i] = (byte)(i * 7);
        }

        return frame;
    }

    [Theory]
    [MemberData(nameof(Entries))]
    public void EverySendEntryHonoursTheRateLimitInsertsThePairsVlanTagAndRecoversABrokenRingAlike(string entry)
    {
        using VirtioNetDevice net = VirtioNetDevice.Open(
            new SoftwareNetTransport(Modern), _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll, AutoRecover = true });
        VirtioNetQueuePair pair = net.Pairs[0];
        byte[] frame = Frame(100);
        var tag = new VlanTag(100, priority: 5);

        // VLAN insertion: the device reads the frame with the pair's tag after the addresses.
        pair.VlanTag = tag;
        var tx = new SoftwareSplitDevice(_memory, pair.TransmitQueue.Queue, eventIdx: true);
        Assert.True(Send(entry, pair, frame));
        Assert.True(tx.TryPop(out DeviceChain? chain));
        byte[] sent = chain.ReadReadable()[net.HeaderLength..];
        Assert.True(VlanFrame.TryReadTag(sent, out VlanTag seen));
        Assert.Equal(tag, seen);
        Assert.Equal(frame.Length + EthernetFrame.VlanTagLength, sent.Length);
        Assert.Equal(frame[..12], sent[..12]);
        Assert.Equal(frame[12..], sent[16..]);
        tx.Complete(chain, 0);

        // Rate limit: a bucket holding one tagged frame's bytes, refilled at 1 byte a second, takes one frame.
        pair.RateLimit = new TokenBucket(ratePerSecond: 1, burst: frame.Length + EthernetFrame.VlanTagLength);
        Assert.True(Send(entry, pair, frame));
        Assert.False(Send(entry, pair, frame));
        Assert.True(pair.RateLimit.Throttled > 0);
        Assert.Single(tx.PopAll());
        pair.RateLimit = null;

        // Recovery: a used id past the ring breaks transmitq1; the next send recovers the device and reports nothing
        // sent, the one after sends.
        tx.PushUsed(9999, 0);
        Assert.False(Send(entry, pair, frame));
        Assert.Equal(1, net.Recoveries);
        var again = new SoftwareSplitDevice(_memory, pair.TransmitQueue.Queue, eventIdx: true);
        Assert.True(Send(entry, pair, frame));
        Assert.True(again.TryPop(out DeviceChain? after));
        Assert.True(VlanFrame.TryReadTag(after.ReadReadable().AsSpan(net.HeaderLength), out _));
    }
}
