using System.Buffers.Binary;

namespace VirtioNet.Net.Offloads;

/// <summary>
/// Software receive coalescing (GRO) for devices that do not coalesce (no VIRTIO_NET_F_GUEST_TSO4/TSO6): merges
/// consecutive, in-order TCP segments of one flow into one large frame in a caller-provided buffer, so the stack above
/// handles one packet where the wire carried many. Allocates nothing. Ref: virtio v1.2 §5.1.6.4.
/// </summary>
/// <remarks>
/// <para>
/// A segment joins the pending frame when it has the same Ethernet header (addresses and VLAN tags), the same IP
/// addresses, IPv4 type of service, TTL and flags or IPv6 traffic class, flow label and hop limit, no IPv4 options, the
/// same ports, acknowledgment number, TCP header length and option bytes, a sequence number that continues the pending
/// payload exactly, a payload no larger than the first segment's, only ACK (and PSH) set, and the result stays within
/// 65535 bytes of IP packet and within the buffer. A segment with PSH, or one shorter than the first, closes the run:
/// the sender pushed, or that was the tail of a burst. The merged frame keeps the first segment's headers with the
/// lengths fixed up, the last segment's window and PSH, and a new IPv4 header checksum.
/// </para>
/// <para>
/// The TCP checksum of the merged frame is recomputed at <see cref="Flush"/> when asked for in the constructor;
/// otherwise the field is left as the first segment's (stale) and the caller must deliver the frame as already
/// validated (VIRTIO_NET_HDR_F_DATA_VALID semantics). Either way the caller must only offer segments whose checksums
/// were validated, as merging destroys the per-segment checksums that would show corruption.
/// </para>
/// <para>
/// Use: offer each received frame to <see cref="TryAdd"/>. When it returns false, deliver <see cref="Flush"/> if
/// <see cref="HasPending"/>, then offer the frame again; if that fails too, deliver the frame as it is. Call
/// <see cref="Flush"/> at the end of every receive burst so a run never waits for traffic that may not come.
/// </para>
/// </remarks>
public sealed class SoftwareReceiveCoalescing
{
    /// <summary>The largest IP packet (total length for IPv4, header and payload length for IPv6) a merge may make.</summary>
    public const int MaximumIPPacketLength = 65535;

    private const byte TcpFlagFin = 0x01;
    private const byte TcpFlagSyn = 0x02;
    private const byte TcpFlagRst = 0x04;
    private const byte TcpFlagPsh = 0x08;
    private const byte TcpFlagAck = 0x10;
    private const byte TcpFlagUrg = 0x20;
    private const byte TcpFlagEce = 0x40;
    private const byte TcpFlagCwr = 0x80;
    private const int IPv4HeaderLength = 20;

    private readonly Memory<byte> buffer;
    private readonly bool recomputeTransportChecksum;
    private PacketLayout layout;
    private int length;
    private uint nextSequence;
    private bool closed;
    private byte[]? held;
    private int heldLength;

    /// <summary>
    /// Creates a coalescer that builds merged frames in <paramref name="buffer"/>; it should hold
    /// <see cref="EthernetFrame.MaxGsoFrameLength"/> bytes for the full 64 KiB, a smaller one caps the merge.
    /// </summary>
    /// <param name="buffer">Where the pending frame is built; owned by the coalescer until it is dropped.</param>
    /// <param name="recomputeTransportChecksum">True to write a complete TCP checksum at <see cref="Flush"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> cannot hold even an Ethernet header.</exception>
    public SoftwareReceiveCoalescing(Memory<byte> buffer, bool recomputeTransportChecksum)
    {
        if (buffer.Length < EthernetFrame.HeaderLength)
        {
            throw new ArgumentException($"A coalescing buffer of {buffer.Length} bytes cannot hold a frame.", nameof(buffer));
        }

        this.buffer = buffer;
        this.recomputeTransportChecksum = recomputeTransportChecksum;
    }

    /// <summary>True when a frame is pending: <see cref="Flush"/> must be delivered before it is lost.</summary>
    public bool HasPending => length != 0;

    /// <summary>How many received segments the pending frame holds (0 when none).</summary>
    public int SegmentCount { get; private set; }

    /// <summary>
    /// The payload size of the pending frame's first segment: the gso_size a caller reports when handing the merged
    /// frame on with a VIRTIO_NET_HDR_GSO_TCPV4/TCPV6 header. Ref: virtio v1.2 §5.1.6.4.
    /// </summary>
    public int SegmentSize { get; private set; }

    /// <summary>The headers of the pending frame (valid while <see cref="HasPending"/>).</summary>
    public PacketLayout PendingLayout => layout;

    /// <summary>
    /// True when <paramref name="frame"/> could start a run: a TCP segment over IPv4 (without options or fragments) or
    /// IPv6, with payload, and with no flag other than ACK and PSH.
    /// </summary>
    public static bool IsCoalescable(ReadOnlySpan<byte> frame) => IsCoalescable(frame, out _);

    /// <summary>
    /// Merges <paramref name="frame"/> into the pending frame, or starts a pending frame with it when none is pending.
    /// Returns false, changing nothing, when it cannot: the caller delivers <see cref="Flush"/> (if
    /// <see cref="HasPending"/>) and offers the frame again, or delivers the frame as it is if that fails too.
    /// </summary>
    public bool TryAdd(ReadOnlySpan<byte> frame)
    {
        if (!IsCoalescable(frame, out PacketLayout incoming))
        {
            return false;
        }

        Span<byte> pending = buffer.Span;
        if (length == 0)
        {
            int packetLength = incoming.PacketEnd;
            if (packetLength > pending.Length)
            {
                return false;
            }

            // Ethernet padding after the IP packet is dropped: the merged frame ends where its IP packet does.
            frame[..packetLength].CopyTo(pending);
            layout = incoming;
            length = packetLength;
            SegmentSize = incoming.PayloadLength;
            SegmentCount = 1;
            nextSequence = unchecked(ReadSequence(frame, incoming) + (uint)incoming.PayloadLength);
            closed = (TcpFlags(frame, incoming) & TcpFlagPsh) != 0;
            return true;
        }

        if (closed || !Continues(pending, frame, incoming))
        {
            return false;
        }

        int payload = incoming.PayloadLength;
        int newLength = length + payload;
        if (payload > SegmentSize || newLength > pending.Length || newLength - layout.NetworkOffset > MaximumIPPacketLength)
        {
            return false;
        }

        frame.Slice(incoming.HeaderLength, payload).CopyTo(pending[length..]);
        length = newLength;
        layout = layout with { PacketEnd = newLength };
        SegmentCount++;
        nextSequence = unchecked(nextSequence + (uint)payload);

        // The newest window advertisement and PSH are what the receiver must act on; the other fields are equal.
        int tcp = layout.TransportOffset;
        frame.Slice(incoming.TransportOffset + 14, 2).CopyTo(pending[(tcp + 14)..]);
        byte pushed = (byte)(TcpFlags(frame, incoming) & TcpFlagPsh);
        pending[tcp + 13] |= pushed;
        closed = pushed != 0 || payload < SegmentSize;
        return true;
    }

    /// <summary>
    /// Finishes the pending frame (IP length and header checksum, TCP checksum if asked for), forgets it and returns it.
    /// The span stays valid until the next <see cref="TryAdd"/>. Returns an empty span when nothing is pending.
    /// </summary>
    public ReadOnlySpan<byte> Flush()
    {
        if (length == 0)
        {
            return [];
        }

        Span<byte> frame = buffer.Span[..length];
        int network = layout.NetworkOffset;
        if (layout.IsIPv6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame[(network + 4)..], (ushort)(length - layout.TransportOffset));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame[(network + 2)..], (ushort)(length - network));
            BinaryPrimitives.WriteUInt16BigEndian(frame[(network + 10)..], 0);
            BinaryPrimitives.WriteUInt16BigEndian(frame[(network + 10)..], InternetChecksum.Compute(frame.Slice(network, IPv4HeaderLength)));
        }

        if (recomputeTransportChecksum)
        {
            int field = layout.TransportOffset + layout.ChecksumFieldOffset;
            BinaryPrimitives.WriteUInt16BigEndian(frame[field..], 0);
            ushort checksum = InternetChecksum.ComputeTransport(
                layout.SourceAddress(frame), layout.DestinationAddress(frame), InternetChecksum.ProtocolTcp, frame[layout.TransportOffset..]);
            BinaryPrimitives.WriteUInt16BigEndian(frame[field..], checksum);
        }

        length = 0;
        SegmentCount = 0;
        SegmentSize = 0;
        closed = false;
        return frame;
    }

    /// <summary>
    /// The opt-in receive path with coalescing: like <see cref="VirtioNetQueuePair.TryReceive"/>,
    /// but consecutive segments of one flow waiting in <paramref name="pair"/>'s receive queue come out as one merged frame. A run is
    /// delivered when a frame that does not join it arrives (that frame is held and delivered next) or when the queue
    /// is empty, so nothing waits for traffic that may not come. Use one coalescer per queue, from one thread.
    /// </summary>
    /// <param name="pair">The pair whose receive queue to drain.</param>
    /// <param name="destination">At least as long as the coalescing buffer and <see cref="VirtioNetQueuePair.MaxReceiveFrameLength"/>.</param>
    /// <param name="length">The delivered frame's length.</param>
    /// <returns>False when no frame is waiting (back-pressure, as for the queue itself).</returns>
    /// <remarks>
    /// The first call allocates the one frame-sized buffer that holds a frame between calls; later calls allocate nothing.
    /// </remarks>
    public bool TryReceive(VirtioNetQueuePair pair, Span<byte> destination, out int length)
    {
        ArgumentNullException.ThrowIfNull(pair);
        held ??= new byte[pair.MaxReceiveFrameLength];
        if (heldLength != 0)
        {
            // A held frame did not join the run before it; nothing is pending now, so it either starts a new run or
            // goes out as it is.
            int frameLength = heldLength;
            heldLength = 0;
            if (!TryAdd(held.AsSpan(0, frameLength)))
            {
                held.AsSpan(0, frameLength).CopyTo(destination);
                length = frameLength;
                return true;
            }
        }

        while (pair.TryReceive(held, out ReceivedFrame frame))
        {
            int received = frame.Length;
            if (TryAdd(held.AsSpan(0, received)))
            {
                continue;
            }

            if (HasPending)
            {
                heldLength = received;
                return Deliver(destination, out length);
            }

            held.AsSpan(0, received).CopyTo(destination);
            length = received;
            return true;
        }

        if (HasPending)
        {
            return Deliver(destination, out length);
        }

        length = 0;
        return false;
    }

    private bool Deliver(Span<byte> destination, out int length)
    {
        ReadOnlySpan<byte> frame = Flush();
        frame.CopyTo(destination);
        length = frame.Length;
        return true;
    }

    private static bool IsCoalescable(ReadOnlySpan<byte> frame, out PacketLayout layout)
    {
        if (!PacketLayout.TryParse(frame, out layout) || !layout.IsTcp || layout.PayloadLength == 0)
        {
            return false;
        }

        // IPv4 options would have to be compared and kept; they are rare enough to leave such segments alone.
        if (!layout.IsIPv6 && layout.TransportOffset - layout.NetworkOffset != IPv4HeaderLength)
        {
            return false;
        }

        // SYN, FIN, RST and URG change connection state or mark data and must reach TCP as sent; CWR and ECE carry
        // congestion signals that merging would lose or duplicate. Without ACK the segment is not established data.
        byte flags = TcpFlags(frame, layout);
        const byte Unmergeable = TcpFlagFin | TcpFlagSyn | TcpFlagRst | TcpFlagUrg | TcpFlagEce | TcpFlagCwr;
        return (flags & Unmergeable) == 0 && (flags & TcpFlagAck) != 0;
    }

    private static byte TcpFlags(ReadOnlySpan<byte> frame, in PacketLayout layout) => frame[layout.TransportOffset + 13];

    private static uint ReadSequence(ReadOnlySpan<byte> frame, in PacketLayout layout) =>
        BinaryPrimitives.ReadUInt32BigEndian(frame[(layout.TransportOffset + 4)..]);

    private bool Continues(ReadOnlySpan<byte> pending, ReadOnlySpan<byte> frame, in PacketLayout incoming)
    {
        if (incoming.IsIPv6 != layout.IsIPv6 || incoming.NetworkOffset != layout.NetworkOffset
            || incoming.TransportHeaderLength != layout.TransportHeaderLength)
        {
            return false;
        }

        // Ethernet header and VLAN tags: one flow on one link and VLAN.
        int network = layout.NetworkOffset;
        if (!frame[..network].SequenceEqual(pending[..network]))
        {
            return false;
        }

        if (layout.IsIPv6)
        {
            // Version, traffic class and flow label (4 bytes); next header and hop limit; both addresses.
            if (!frame.Slice(network, 4).SequenceEqual(pending.Slice(network, 4))
                || !frame.Slice(network + 6, 34).SequenceEqual(pending.Slice(network + 6, 34)))
            {
                return false;
            }
        }
        else
        {
            // Version/IHL and type of service; flags (DF) and fragment offset; TTL and protocol; both addresses. The
            // identification may run on or not: a merged packet keeps the first one's, as a LRO device does.
            if (!frame.Slice(network, 2).SequenceEqual(pending.Slice(network, 2))
                || !frame.Slice(network + 6, 4).SequenceEqual(pending.Slice(network + 6, 4))
                || !frame.Slice(network + 12, 8).SequenceEqual(pending.Slice(network + 12, 8)))
            {
                return false;
            }
        }

        int tcp = layout.TransportOffset;
        int incomingTcp = incoming.TransportOffset;

        // Ports, then acknowledgment number, then options: a different ACK is new information for the sender side of
        // the stack, and different options (timestamps, SACK) would be lost by keeping only the first header.
        return frame.Slice(incomingTcp, 4).SequenceEqual(pending.Slice(tcp, 4))
            && ReadSequence(frame, incoming) == nextSequence
            && frame.Slice(incomingTcp + 8, 4).SequenceEqual(pending.Slice(tcp + 8, 4))
            && frame.Slice(incomingTcp + 20, incoming.TransportHeaderLength - 20).SequenceEqual(pending.Slice(tcp + 20, layout.TransportHeaderLength - 20));
    }
}
