using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The zero-copy burst API of the receive side: buffers are lent to the caller and given back in batches.
public sealed partial class VirtioNetReceiveQueue
{
    /// <summary>
    /// Takes up to <paramref name="packets"/>.Length received buffers without copying them. Returns how many entries were
    /// filled. Malformed packets are counted as errors and reposted, never returned. The buffers belong to the caller
    /// until <see cref="ReleaseBurst"/>; meanwhile the device cannot use them, so release promptly.
    /// </summary>
    /// <remarks>
    /// A multi-buffer packet is never split across two calls: if its segments do not fit what is left of the span, it is
    /// handed out first by the next call; one with more segments than the whole span is dropped and counted.
    /// </remarks>
    public int ReceiveBurst(Span<ReceivedPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            return ReceiveBurstCore(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private int ReceiveBurstCore(Span<ReceivedPacket> packets)
    {
        int count = 0;
        if (_pendingCount > 0)
        {
            _pending.AsSpan(0, _pendingCount).CopyTo(packets);
            count = _pendingCount;
            _pendingCount = 0;
        }

        while (count < packets.Length && _queue.TryTakeUsed(out UsedBuffer used))
        {
            // Receive dispatch point of the burst API.
            count += Mode == ReceiveMode.Mergeable ? BurstMergeable(used, packets[count..], wholeSpan: count == 0) : BurstWhole(used, packets[count..]);
            if (_pendingCount > 0)
            {
                break;
            }
        }

        return count;
    }

    /// <summary>Gives buffers from <see cref="ReceiveBurst"/> back to the device, with one notification at most.</summary>
    public void ReleaseBurst(ReadOnlySpan<ReceivedPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            ReleaseBurstCore(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private void ReleaseBurstCore(ReadOnlySpan<ReceivedPacket> packets)
    {
        foreach (ReceivedPacket packet in packets)
        {
            if ((uint)packet.Slot >= (uint)_slotCount)
            {
                throw new ArgumentException($"Slot {packet.Slot} is not a receive buffer of {Statistics.Name}.", nameof(packets));
            }

            Repost(packet.Slot);
        }

        RefillAndKick();
    }

    // Small and big modes: one chain, one packet.
    private int BurstWhole(UsedBuffer used, Span<ReceivedPacket> packets)
    {
        int slot = used.Token;
        int frameLength = used.Length - _headerLength;
        if (frameLength < EthernetFrame.HeaderLength || frameLength > MaxFrameLength)
        {
            Repost(slot);
            Statistics.AddError();
            return 0;
        }

        int start = slot * _slotLength;
        packets[0] = new ReceivedPacket(slot, _pool.Slice(start + _headerLength, frameLength), 1, false, _pool.Span[start + VirtioNetHeader.FlagsOffset]);
        Statistics.AddPacket(frameLength);
        return 1;
    }

    // Mergeable mode: num_buffers entries for one packet, or none when it is malformed.
    private int BurstMergeable(UsedBuffer first, Span<ReceivedPacket> packets, bool wholeSpan)
    {
        int slot = first.Token;
        int start = slot * _slotLength;
        Span<byte> pool = _pool.Span;
        if (first.Length < _headerLength)
        {
            Repost(slot);
            Statistics.AddError();
            return 0;
        }

        int numBuffers = pool[start + VirtioNetHeader.NumBuffersOffset] | (pool[start + VirtioNetHeader.NumBuffersOffset + 1] << 8);
        if (numBuffers < 1 || numBuffers > _slotCount)
        {
            Repost(slot);
            Statistics.AddError();
            DropFollowing(numBuffers - 1);
            return 0;
        }

        // Longer than what is left of the caller's span: gather into _pending and hand it out first on the next call.
        // Longer than the caller's whole span: it can never be handed out, so it is dropped and counted.
        bool dropForSpan = numBuffers > packets.Length && wholeSpan;
        Span<ReceivedPacket> target = numBuffers <= packets.Length ? packets : _pending.AsSpan(0, numBuffers);
        int total = first.Length - _headerLength;
        target[0] = new ReceivedPacket(slot, _pool.Slice(start + _headerLength, total), numBuffers, false, pool[start + VirtioNetHeader.FlagsOffset]);
        for (int i = 1; i < numBuffers; i++)
        {
            if (!_queue.TryTakeUsed(out UsedBuffer next))
            {
                // Fewer buffers than num_buffers promised: give back what was taken and count the packet as an error.
                for (int j = 0; j < i; j++)
                {
                    Repost(target[j].Slot);
                }

                Statistics.AddError();
                return 0;
            }

            total += next.Length;
            target[i] = new ReceivedPacket(next.Token, _pool.Slice(next.Token * _slotLength, next.Length), 0, true, 0);
        }

        if (total < EthernetFrame.HeaderLength || total > MaxFrameLength || dropForSpan)
        {
            for (int j = 0; j < numBuffers; j++)
            {
                Repost(target[j].Slot);
            }

            if (dropForSpan)
            {
                Statistics.AddDrop();
            }
            else
            {
                Statistics.AddError();
            }

            return 0;
        }

        Statistics.AddPacket(total);
        if (numBuffers > packets.Length)
        {
            _pendingCount = numBuffers;
            return 0;
        }

        return numBuffers;
    }

    private void DropFollowing(int count)
    {
        for (int i = 0; i < count && i < _slotCount && _queue.TryTakeUsed(out UsedBuffer next); i++)
        {
            Repost(next.Token);
        }
    }
}
