using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// A TEST TCP/IPv4 endpoint that uses only the driver's zero-copy burst API: frames are written by hand straight into
/// lent transmit buffers (large segments into the large buffers, with a segmentation request per packet), and received
/// frames are read where the device wrote them, with the offload metadata each packet carries. Just enough TCP for a
/// kernel peer, as <see cref="TestTcpEndpoint"/> has: active open with an MSS option only (no window scaling, SACK or
/// timestamps), in-order data with cumulative ACKs, go-back-N on a timeout, FIN both ways. Every other receive burst asks
/// the driver to complete partial checksums; the others leave them <see cref="ReceivedChecksumState.Partial"/> and the
/// endpoint completes them itself where the metadata says, so both ways are exercised against the same peer.
/// </summary>
internal sealed class BurstTcpEndpoint
{
    private const int EthernetHeader = 14;
    private const int IpHeader = 20;
    private const int TcpHeader = 20;
    private const int TransportOffset = EthernetHeader + IpHeader;
    private const byte Fin = 0x01;
    private const byte Syn = 0x02;
    private const byte Psh = 0x08;
    private const byte Ack = 0x10;
    private static readonly TimeSpan RetransmitTimeout = TimeSpan.FromMilliseconds(400);

    private readonly VirtioNetDevice _net;
    private readonly VirtioNetReceiveQueue _rx;
    private readonly VirtioNetTransmitQueue _tx;
    private readonly byte[] _localMac;
    private readonly byte[] _remoteMac;
    private readonly byte[] _localAddress;
    private readonly byte[] _remoteAddress;
    private readonly ushort _localPort;
    private readonly ushort _remotePort;
    private readonly ReceivedPacket[] _burst = new ReceivedPacket[512];
    private readonly TransmitPacket[] _one = new TransmitPacket[1];
    private readonly MemoryStream _received = new();

    private uint _sendUnacknowledged;
    private uint _sendNext;
    private uint _receiveNext;
    private int _peerWindow;
    private bool _peerFin;
    private bool _established;
    private ushort _ipId = 1;
    private int _bursts;
    private Stopwatch _lastProgress = Stopwatch.StartNew();

    public BurstTcpEndpoint(VirtioNetDevice net, byte[] remoteMac, IPAddress localAddress, IPAddress remoteAddress, ushort localPort, ushort remotePort, int mss, int largestSegment)
    {
        _net = net;
        _rx = net.ReceiveQueues[0];
        _tx = net.TransmitQueues[0];
        _localMac = net.MacAddress.ToArray();
        _remoteMac = remoteMac;
        _localAddress = localAddress.GetAddressBytes();
        _remoteAddress = remoteAddress.GetAddressBytes();
        _localPort = localPort;
        _remotePort = remotePort;
        Mss = mss;
        LargestSegment = largestSegment;
    }

    /// <summary>The MSS announced, and the segment size the device is asked to cut large segments into.</summary>
    public int Mss { get; }

    /// <summary>The most payload in one transmit buffer.</summary>
    public int LargestSegment { get; }

    /// <summary>Frames received for this connection.</summary>
    public int FramesReceived { get; private set; }

    /// <summary>Frames longer than an MTU-sized frame could be.</summary>
    public int FramesLargerThanMtu { get; private set; }

    /// <summary>Frames whose metadata said GSO.</summary>
    public int GsoFramesReceived { get; private set; }

    /// <summary>GSO frames whose metadata did not fit the frame: not TCPV4, gso_size 0 or above the MSS, or a frame above the MTU without GSO.</summary>
    public int MetadataMismatches { get; private set; }

    /// <summary>The longest frame received.</summary>
    public int LongestFrameReceived { get; private set; }

    /// <summary>Frames handed out in more than one buffer.</summary>
    public int MultiBufferFrames { get; private set; }

    /// <summary>Partial checksums the endpoint completed itself, where the metadata said.</summary>
    public int PartialChecksumsCompletedHere { get; private set; }

    /// <summary>Frames whose IPv4 or TCP checksum was wrong after the driver's and the endpoint's work (dropped).</summary>
    public int BadChecksums { get; private set; }

    /// <summary>Checksum states the driver reported, counted.</summary>
    public Dictionary<ReceivedChecksumState, int> ChecksumStates { get; } = [];

    /// <summary>Segments sent with a segmentation request (the device cut them).</summary>
    public int LargeSegmentsSent { get; private set; }

    /// <summary>Data sent again after a timeout.</summary>
    public int Retransmissions { get; private set; }

    public void Connect(TimeSpan timeout)
    {
        uint iss = (uint)Random.Shared.Next();
        _sendUnacknowledged = iss;
        _sendNext = iss + 1;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            Send(iss, Syn, []);
            var wait = Stopwatch.StartNew();
            while (wait.Elapsed < TimeSpan.FromMilliseconds(500))
            {
                Poll();
                if (_established)
                {
                    SendAck();
                    return;
                }
            }
        }

        throw new TimeoutException("The kernel never answered the SYN.");
    }

    /// <summary>Sends all of <paramref name="data"/>, then FIN, and waits until both are acknowledged.</summary>
    public void SendAll(ReadOnlySpan<byte> data, TimeSpan timeout)
    {
        uint start = _sendUnacknowledged;
        var clock = Stopwatch.StartNew();
        _lastProgress = Stopwatch.StartNew();
        while (_sendUnacknowledged - start < (uint)data.Length)
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{_sendUnacknowledged - start} of {data.Length} bytes acknowledged in {timeout}.");
            }

            int inFlight = (int)(_sendNext - _sendUnacknowledged);
            int offset = (int)(_sendNext - start);
            int room = Math.Min(_peerWindow - inFlight, data.Length - offset);
            if (room > 0 && (room >= Math.Min(Mss, data.Length - offset) || inFlight == 0))
            {
                int length = Math.Min(room, LargestSegment);
                if (Send(_sendNext, Ack | Psh, data.Slice(offset, length)))
                {
                    _sendNext += (uint)length;
                }
            }

            Poll();
            if (_lastProgress.Elapsed > RetransmitTimeout && _sendNext != _sendUnacknowledged)
            {
                Retransmissions++;
                _sendNext = _sendUnacknowledged;
                _lastProgress.Restart();
            }
        }

        Close(timeout - clock.Elapsed);
    }

    /// <summary>Receives until the peer's FIN, acknowledging as data arrives; returns the bytes.</summary>
    public byte[] ReceiveAll(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!_peerFin)
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{_received.Length} bytes received, no FIN, in {timeout}.");
            }

            Poll();
        }

        Close(timeout - clock.Elapsed);
        return _received.ToArray();
    }

    private void Close(TimeSpan timeout)
    {
        uint fin = _sendNext;
        var clock = Stopwatch.StartNew();
        var resend = Stopwatch.StartNew();
        Send(fin, Fin | Ack, []);
        _sendNext = fin + 1;
        while (_sendUnacknowledged != fin + 1 || !_peerFin)
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException("The connection did not close.");
            }

            Poll();
            if (_sendUnacknowledged != fin + 1 && resend.Elapsed > RetransmitTimeout)
            {
                Send(fin, Fin | Ack, []);
                resend.Restart();
            }
        }
    }

    private void SendAck() => Send(_sendNext, Ack, []);

    // One burst: each packet read where the device wrote it (joined into one array only to parse it here), then released.
    private void Poll()
    {
        ReceiveBurstOptions options = (_bursts++ & 1) == 0 ? ReceiveBurstOptions.CompletePartialChecksums : ReceiveBurstOptions.None;
        int count = _rx.ReceiveBurst(_burst, options);
        for (int i = 0; i < count;)
        {
            ReceivedPacket first = _burst[i];
            int segments = Math.Max(1, first.SegmentCount);
            byte[] frame = new byte[Enumerable.Range(i, segments).Sum(k => _burst[k].Length)];
            int offset = 0;
            for (int k = i; k < i + segments; k++)
            {
                _burst[k].Span.CopyTo(frame.AsSpan(offset));
                offset += _burst[k].Length;
            }

            Handle(frame, first.Offload, segments);
            i += segments;
        }

        _rx.ReleaseBurst(_burst.AsSpan(0, count));
    }

    private void Handle(byte[] frame, ReceivedFrameInfo info, int buffers)
    {
        Span<byte> f = frame;
        if (f.Length < TransportOffset + TcpHeader || BinaryPrimitives.ReadUInt16BigEndian(f[12..]) != 0x0800 || f[EthernetHeader + 9] != 6 ||
            !f.Slice(EthernetHeader + 12, 4).SequenceEqual(_remoteAddress) ||
            BinaryPrimitives.ReadUInt16BigEndian(f[TransportOffset..]) != _remotePort || BinaryPrimitives.ReadUInt16BigEndian(f[(TransportOffset + 2)..]) != _localPort)
        {
            return;
        }

        int ipEnd = EthernetHeader + BinaryPrimitives.ReadUInt16BigEndian(f[(EthernetHeader + 2)..]);
        int tcpHeader = (f[TransportOffset + 12] >> 4) * 4;
        int payloadLength = ipEnd - TransportOffset - tcpHeader;
        FramesReceived++;
        LongestFrameReceived = Math.Max(LongestFrameReceived, frame.Length);
        MultiBufferFrames += buffers > 1 ? 1 : 0;
        ChecksumStates[info.Checksum] = ChecksumStates.GetValueOrDefault(info.Checksum) + 1;
        bool aboveMtu = frame.Length > _net.Mtu + EthernetHeader;
        FramesLargerThanMtu += aboveMtu ? 1 : 0;
        if (info.IsGso)
        {
            GsoFramesReceived++;
            if (info.GsoType != VirtioNetGsoType.TcpV4 || info.GsoSize == 0 || info.GsoSize > Mss)
            {
                MetadataMismatches++;
            }
        }
        else if (aboveMtu)
        {
            MetadataMismatches++;
        }

        if (info.Checksum == ReceivedChecksumState.Partial)
        {
            if (info.ChecksumStart != TransportOffset || info.ChecksumOffset != 16)
            {
                MetadataMismatches++;
            }

            InternetChecksum.CompletePartial(f[..ipEnd], info.ChecksumStart, info.ChecksumOffset);
            PartialChecksumsCompletedHere++;
        }

        uint pseudo = InternetChecksum.PseudoHeaderSum(f.Slice(EthernetHeader + 12, 4), f.Slice(EthernetHeader + 16, 4), 6, ipEnd - TransportOffset);
        if (!InternetChecksum.IsValid(f.Slice(EthernetHeader, IpHeader)) || InternetChecksum.Add(f[TransportOffset..ipEnd], pseudo) != 0xFFFF)
        {
            BadChecksums++;
            return;
        }

        uint sequence = BinaryPrimitives.ReadUInt32BigEndian(f[(TransportOffset + 4)..]);
        uint acknowledgment = BinaryPrimitives.ReadUInt32BigEndian(f[(TransportOffset + 8)..]);
        byte flags = f[TransportOffset + 13];
        int window = BinaryPrimitives.ReadUInt16BigEndian(f[(TransportOffset + 14)..]);
        if ((flags & Syn) != 0)
        {
            if ((flags & Ack) != 0 && acknowledgment == _sendUnacknowledged + 1 && !_established)
            {
                _established = true;
                _sendUnacknowledged = acknowledgment;
                _receiveNext = sequence + 1;
                _peerWindow = window;
            }

            return;
        }

        if ((flags & Ack) != 0)
        {
            if ((int)(acknowledgment - _sendUnacknowledged) > 0 && (int)(acknowledgment - _sendNext) <= 0)
            {
                _sendUnacknowledged = acknowledgment;
                _lastProgress.Restart();
            }

            _peerWindow = window;
        }

        if (payloadLength > 0 || (flags & Fin) != 0)
        {
            if (sequence == _receiveNext)
            {
                _received.Write(frame, TransportOffset + tcpHeader, payloadLength);
                _receiveNext += (uint)payloadLength;
                if ((flags & Fin) != 0)
                {
                    _receiveNext++;
                    _peerFin = true;
                }
            }

            SendAck();
        }
    }

    // Writes one segment straight into a lent transmit buffer (a large one when it is longer than a frame) and hands it
    // over with the checksum, and for a payload above the MSS the segmentation, asked of the device. False when no
    // buffer is free within a few milliseconds.
    private bool Send(uint sequence, byte flags, ReadOnlySpan<byte> payload)
    {
        int tcpLength = (flags & Syn) != 0 ? TcpHeader + 4 : TcpHeader;
        int length = TransportOffset + tcpLength + payload.Length;
        bool large = length > _tx.MaxFrameLength;
        var clock = Stopwatch.StartNew();
        while ((large ? _tx.AllocateLargeBurst(_one) : _tx.AllocateBurst(_one)) == 0)
        {
            if (clock.Elapsed > TimeSpan.FromMilliseconds(50))
            {
                return false;
            }

            _tx.Reclaim();
        }

        Span<byte> f = _one[0].Span;
        _remoteMac.CopyTo(f);
        _localMac.CopyTo(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
        Span<byte> ip = f.Slice(EthernetHeader, IpHeader);
        ip.Clear();
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(length - EthernetHeader));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], _ipId++);
        ip[6] = 0x40;   // don't fragment
        ip[8] = 64;
        ip[9] = 6;
        _localAddress.CopyTo(ip[12..]);
        _remoteAddress.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip));

        Span<byte> tcp = f.Slice(TransportOffset, tcpLength);
        tcp.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(tcp, _localPort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], _remotePort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], (flags & Ack) != 0 ? _receiveNext : 0);
        tcp[12] = (byte)((tcpLength / 4) << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 65535);
        if ((flags & Syn) != 0)
        {
            // The MSS option alone (kind 2, length 4), so the kernel uses no window scaling, SACK or timestamps.
            tcp[20] = 2;
            tcp[21] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(tcp[22..], (ushort)Mss);
        }

        payload.CopyTo(f[(TransportOffset + tcpLength)..]);
        bool segment = payload.Length > Mss;
        _one[0] = _one[0].WithLength(length).WithOffload(segment ? TransmitOffloadRequest.Segmentation(Mss) : TransmitOffloadRequest.Checksum);
        if (_tx.TransmitBurst(_one, out TransmitBurstStatus status) == 1)
        {
            LargeSegmentsSent += segment ? 1 : 0;
            return true;
        }

        _tx.FreeBurst(_one);
        return status == TransmitBurstStatus.RingFull ? false : throw new InvalidOperationException($"The burst refused a segment: {status}.");
    }
}
