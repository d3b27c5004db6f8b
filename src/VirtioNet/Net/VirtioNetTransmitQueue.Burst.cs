using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

// The zero-copy burst API of the transmit side: the caller writes frames straight into transmit buffers.
public sealed partial class VirtioNetTransmitQueue
{
    /// <summary>
    /// Lends up to <paramref name="packets"/>.Length free transmit buffers (after reclaiming completed ones). Returns how
    /// many. Each must come back through <see cref="TransmitBurst"/> or <see cref="FreeBurst"/>.
    /// </summary>
    public int AllocateBurst(Span<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            return AllocateBurstEntered(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private int AllocateBurstEntered(Span<TransmitPacket> packets)
    {
        if (_freeCount < packets.Length)
        {
            Reclaim();
        }

        int count = Math.Min(packets.Length, _freeCount);
        for (int i = 0; i < count; i++)
        {
            int slot = _freeSlots[--_freeCount];
            packets[i] = new TransmitPacket(slot, _pool.Slice((slot * _slotLength) + _headerLength, MaxFrameLength), 0);
        }

        return count;
    }

    /// <summary>
    /// Hands the buffers to the device in order, behind zeroed headers, with one notification at most for the whole
    /// burst. Returns how many were queued; the rest (when the ring is full) stay the caller's, to send later or free.
    /// </summary>
    public int TransmitBurst(ReadOnlySpan<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            return TransmitBurstEntered(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private int TransmitBurstEntered(ReadOnlySpan<TransmitPacket> packets)
    {
        int sent = 0;
        foreach (TransmitPacket packet in packets)
        {
            CheckOwned(packet);
            if (packet.Length < EthernetFrame.HeaderLength || packet.Length > MaxFrameLength)
            {
                throw new ArgumentException($"A frame must be {EthernetFrame.HeaderLength} to {MaxFrameLength} bytes long; packet {sent} has {packet.Length}.", nameof(packets));
            }

            if (!Enqueue(packet.Slot, packet.Length))
            {
                break;
            }

            Statistics.AddPacket(packet.Length);
            sent++;
        }

        if (sent > 0 && _queue.KickPrepare())
        {
            _notify(_queue.QueueIndex);
            Statistics.AddNotification();
        }

        return sent;
    }

    /// <summary>Returns lent buffers without sending them.</summary>
    public void FreeBurst(ReadOnlySpan<TransmitPacket> packets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool entered = _gate.Enter();
        try
        {
            FreeBurstEntered(packets);
        }
        finally
        {
            _gate.Exit(entered);
        }
    }

    private void FreeBurstEntered(ReadOnlySpan<TransmitPacket> packets)
    {
        foreach (TransmitPacket packet in packets)
        {
            CheckOwned(packet);
            _freeSlots[_freeCount++] = packet.Slot;
        }
    }

    private void CheckOwned(TransmitPacket packet)
    {
        if ((uint)packet.Slot >= (uint)_freeSlots.Length || packet.Room.Pointer != _pool.Pointer + (packet.Slot * _slotLength) + _headerLength)
        {
            throw new ArgumentException($"The packet is not a buffer of {Statistics.Name}.", nameof(packet));
        }
    }
}
