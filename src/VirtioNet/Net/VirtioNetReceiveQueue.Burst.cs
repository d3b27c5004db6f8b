using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Platform;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The zero-copy burst API of the receive side: buffers are lent to the caller and given back in batches.
internal sealed partial class VirtioNetReceiveQueue
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
    public int ReceiveBurst(Span<ReceivedPacket> packets) => ReceiveBurst(packets, ReceiveBurstOptions.None);

    /// <summary>
    /// Like <see cref="ReceiveBurst(Span{ReceivedPacket})"/>, and does what <paramref name="options"/> asks of each
    /// packet's checksum. Every packet's virtio_net_hdr is checked whatever the options, by the same validator as the
    /// copying path (<see cref="Offloads.ReceiveOffload"/>): flags or a gso_type the negotiated features forbid, GSO fields the
    /// frame contradicts, or csum_start/csum_offset outside the IP packet make the packet a counted error
    /// (<see cref="VirtioNetQueueStatistics.Errors"/>), its buffers reposted and never handed out. What the header said
    /// is in <see cref="ReceivedPacket.Offload"/> and <see cref="ReceivedPacket.Hash"/> of the first segment.
    /// Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    /// <remarks>
    /// A multi-buffer (mergeable) packet must have every header up to its TCP/UDP payload in its first buffer (a
    /// device that follows the spec fills buffers in order, and the first holds 1.5 KB); its partial checksum, whose
    /// field may lie anywhere in the IP packet, is completed across the segments when asked, in place, without a copy.
    /// </remarks>
    public int ReceiveBurst(Span<ReceivedPacket> packets, ReceiveBurstOptions options)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        return ReceiveBurstCore(packets, options);
    }

    // Per slot, while the buffer is lent: the header's flags, and whether _slotInfo / _slotHash hold what the header
    // said (written only for a header with something to say, so the common packet stores one byte of metadata).
    private byte[] _slotFlags = [];
    private bool[] _slotHasInfo = [];
    private ReceivedFrameInfo[] _slotInfo = [];
    private ReceiveHash[] _slotHash = [];

    // Decided once (DmaSync.IsNeeded): whether the allocator's sync methods do anything; false on coherent platforms,
    // where the packet path then makes no call at all.
    private bool _syncDma;

    // Used buffers taken from the ring in one batch (IVirtqueue.TakeUsedBatch) and not yet handled: entries from
    // _takenNext to _takenCount. Every receive path takes buffers through TryTakeUsed, which hands these out first, so a
    // buffer taken in a batch is never lost; recovery reposts any left (ReclaimAfterQueueReset).
    private UsedBuffer[] _taken = [];

    // The next entry of _taken to hand out.
    private int _takenNext;

    // How many entries of _taken are valid.
    private int _takenCount;

    // Sets up what the burst path needs; called once by the constructor.
    private void InitializeBurst(IDmaAllocator dma)
    {
        _slotFlags = new byte[_slotCount];
        _slotHasInfo = new bool[_slotCount];
        _slotInfo = new ReceivedFrameInfo[_slotCount];
        _slotHash = new ReceiveHash[_slotCount];
        _syncDma = DmaSync.IsNeeded(dma);

        // Never more used buffers than buffers posted.
        _taken = new UsedBuffer[_slotCount];
    }

    // Takes up to max used buffers from the ring into _taken with one used.idx read, syncs them for the CPU where that
    // does anything, and starts loading each one's virtio_net_hdr line into the cache: the device has just written
    // those lines from another core, so the misses overlap instead of coming one packet at a time. Returns how many.
    private int TakeBatch(int max)
    {
        int taken = _queue.TakeUsedBatch(_taken.AsSpan(0, Math.Min(max, _taken.Length)));
        _takenNext = 0;
        _takenCount = taken;
        for (int i = 0; i < taken; i++)
        {
            ref readonly UsedBuffer used = ref _taken[i];
            if (_syncDma)
            {
                _dma.SyncForCpu(_pool.Slice(BufferStart(used.Token), used.Length));
            }

            PrefetchHeader(_pool.Pointer + BufferStart(used.Token));
        }

        return taken;
    }

    // A hint only (x86 PREFETCHT0); nothing on other processors.
    private static unsafe void PrefetchHeader(nint address)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            // SAFETY: a prefetch never faults and changes nothing; address is a slot of _pool in any case.
            System.Runtime.Intrinsics.X86.Sse.Prefetch0((void*)address);
        }
    }

    // The packet loop: the used entries of a batch (one used.idx read, headers prefetched), each packet's 16-byte handle
    // written in place, the header's two bytes read once, the statistics settled once for the burst. Anything unusual
    // (several buffers, a header with flags, GSO or a hash, a bad length) takes the general path of its mode, which takes
    // a packet's further buffers through TryTakeUsed (the rest of the batch first, then the ring).
    private int ReceiveBurstCore(Span<ReceivedPacket> packets, ReceiveBurstOptions options)
    {
        int freeBefore = _freeCount;
        int count = 0;
        if (_pendingCount > 0)
        {
            _pending.AsSpan(0, _pendingCount).CopyTo(packets);
            count = _pendingCount;
            _pendingCount = 0;
        }

        int packetsDone = 0;
        long bytes = 0;
        bool mergeable = Mode == ReceiveMode.Mergeable;
        bool plainHeaders = !_hashReported;
        nint pool = _pool.Pointer;
        try
        {
            while (count < packets.Length)
            {
                // A batch cut short by a lie latched the ring broken: the packets before the lie are handed out now, and
                // the next call meets the broken ring (and throws, or recovers), so no lent buffer goes unreported.
                if (_takenNext == _takenCount && ((count > 0 && _queue.IsBroken) || TakeBatch(packets.Length - count) == 0))
                {
                    break;
                }

                UsedBuffer used = _taken[_takenNext++];
                int slot = used.Token;
                int frameLength = used.Length - _headerLength;
                int start = BufferStart(slot);
                if (plainHeaders && (uint)(frameLength - EthernetFrame.HeaderLength) <= (uint)(MaxFrameLength - EthernetFrame.HeaderLength))
                {
                    // flags and gso_type (bytes 0 and 1) at once, num_buffers (bytes 10 and 11) in mergeable mode.
                    ushort flagsAndGso = ReadHeaderUInt16(pool + start + VirtioNetHeader.FlagsOffset);
                    if (flagsAndGso == 0 && (!mergeable || ReadHeaderUInt16(pool + start + VirtioNetHeader.NumBuffersOffset) == 1))
                    {
                        _slotFlags[slot] = 0;
                        _slotHasInfo[slot] = false;
                        packets[count++] = new ReceivedPacket(this, slot, frameLength, 1);
                        packetsDone++;
                        bytes += frameLength;
                        continue;
                    }
                }

                // Receive dispatch point of the burst API.
                count += mergeable ? BurstMergeable(used, packets[count..], wholeSpan: count == 0, options) : BurstWhole(used, packets[count..], options);
                if (_pendingCount > 0)
                {
                    break;
                }
            }
        }
        finally
        {
            Statistics.AddPackets(packetsDone, bytes);
            Statistics.Add(ref _tally);
        }

        if (_freeCount > freeBefore && !_queue.IsBroken)
        {
            // Buffers of dropped packets go straight back to the device, as the copying path gives them back, rather
            // than wait for the next ReleaseBurst (a caller that got nothing may not call it).
            RefillAndKick();
        }

        return count;
    }

    // A little-endian 16-bit header field of a buffer the driver holds (taken from the used ring, not yet lent).
    private static unsafe ushort ReadHeaderUInt16(nint address)
    {
        // SAFETY: address lies inside the header of a slot of _pool, which the device has returned to the driver.
        ushort raw = *(ushort*)address;
        return BitConverter.IsLittleEndian ? raw : System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(raw);
    }

    /// <summary>Gives buffers from <see cref="ReceiveBurst(Span{ReceivedPacket}, ReceiveBurstOptions)"/> back to the device, with one notification at most.</summary>
    public void ReleaseBurst(ReadOnlySpan<ReceivedPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using QueueGate.Scope inside = _gate.EnterScope();
        ReleaseBurstCore(packets);
    }

    private void ReleaseBurstCore(ReadOnlySpan<ReceivedPacket> packets)
    {
        for (int i = 0; i < packets.Length; i++)
        {
            ref readonly ReceivedPacket packet = ref packets[i];
            int slot = packet.Slot;
            if (packet.Queue != this || (uint)slot >= (uint)_slotCount)
            {
                ThrowNotReceiveBuffer(slot, nameof(packets));
            }

            if (_syncDma)
            {
                // The caller owned the buffer and may have written it (so may the checksum completion): cleaned before
                // the device gets it back, so no dirty cache line can later land on what the device writes.
                _dma.SyncForDevice(_pool.Slice(BufferStart(slot), _slotLength));
            }

            Repost(slot);
        }

        RefillAndKick();
    }

    /// <summary>Where a lent segment's bytes are (see <see cref="ReceivedPacket.Data"/>).</summary>
    internal DmaRegion SegmentRegion(int slot, bool continuation, int length) =>
        _pool.Slice(BufferStart(slot) + (continuation ? 0 : _headerLength), length);

    /// <summary>The header flags of a lent first segment.</summary>
    internal byte HeaderFlagsOf(int slot) => (uint)slot < (uint)_slotFlags.Length ? _slotFlags[slot] : (byte)0;

    /// <summary>What the header of a lent first segment said, as checked.</summary>
    internal ReceivedFrameInfo FrameInfoOf(int slot) => (uint)slot < (uint)_slotHasInfo.Length && _slotHasInfo[slot] ? _slotInfo[slot] : default;

    /// <summary>The hash the header of a lent first segment reported.</summary>
    internal ReceiveHash HashOf(int slot) => (uint)slot < (uint)_slotHasInfo.Length && _slotHasInfo[slot] ? _slotHash[slot] : default;

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void ThrowNotReceiveBuffer(int slot, string paramName) =>
        throw new ArgumentException($"Slot {slot} is not a receive buffer of {Statistics.Name}.", paramName);

    // Small and big modes: one chain, one packet.
    private int BurstWhole(UsedBuffer used, Span<ReceivedPacket> packets, ReceiveBurstOptions options)
    {
        int slot = used.Token;
        int frameLength = used.Length - _headerLength;
        if (frameLength < EthernetFrame.HeaderLength || frameLength > MaxFrameLength)
        {
            Repost(slot);
            Statistics.AddError();
            return 0;
        }

        int start = BufferStart(slot);
        _slotFlags[slot] = _pool.Span[start + VirtioNetHeader.FlagsOffset];
        _slotHasInfo[slot] = false;
        packets[0] = new ReceivedPacket(this, slot, frameLength, 1);
        if (!TryCheckBurstOffloads(packets[..1], frameLength, options))
        {
            Repost(slot);
            Statistics.AddError();
            return 0;
        }

        Statistics.AddPacket(frameLength);
        return 1;
    }

    // Mergeable mode: num_buffers entries for one packet, or none when it is malformed.
    private int BurstMergeable(UsedBuffer first, Span<ReceivedPacket> packets, bool wholeSpan, ReceiveBurstOptions options)
    {
        int slot = first.Token;
        int start = BufferStart(slot);
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
        _slotFlags[slot] = pool[start + VirtioNetHeader.FlagsOffset];
        _slotHasInfo[slot] = false;
        target[0] = new ReceivedPacket(this, slot, total, numBuffers);
        for (int i = 1; i < numBuffers; i++)
        {
            if (!TryTakeUsed(out UsedBuffer next))
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
            target[i] = new ReceivedPacket(this, next.Token, next.Length, 0);
        }

        // The header is checked (and the checksum completed) only for a packet that is handed out, now or next call.
        if (total < EthernetFrame.HeaderLength || total > MaxFrameLength || dropForSpan || !TryCheckBurstOffloads(target[..numBuffers], total, options))
        {
            for (int j = 0; j < numBuffers; j++)
            {
                Repost(target[j].Slot);
            }

            if (dropForSpan)
            {
                Statistics.AddDrop(VirtioNetDropReason.CallerSpanTooShort);
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
        for (int i = 0; i < count && i < _slotCount && TryTakeUsed(out UsedBuffer next); i++)
        {
            Repost(next.Token);
        }
    }
}
