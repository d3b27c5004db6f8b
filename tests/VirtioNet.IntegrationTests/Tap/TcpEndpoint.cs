using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// A TEST TCP endpoint above the driver, over IPv4 or IPv6 (by the addresses it is given): just enough TCP for a kernel
/// peer to transfer data with. Active open with an MSS option only (no window scaling, SACK or timestamps, so the kernel
/// uses none), in-order data with cumulative ACKs (out-of-order data is dropped and the ACK repeated), the peer's window
/// respected, go-back-N retransmission on a timeout, and FIN both ways. Not RFC 793: the kernel is the peer that matters.
/// Over IPv6 it answers the kernel's neighbour solicitations for its address (RFC 4861 §7.2.4), as the kernel resolves
/// the driver's address before it answers (and lets them through the driver's MAC filter). Frames are laid out here byte by byte, the TCP checksum left to the driver
/// (by the device or in software); every received frame's offload metadata and checksums are checked before its
/// segment counts. The subclasses say how frames reach and leave the driver: <see cref="TestTcpEndpoint"/> through the
/// copying API, <see cref="BurstTcpEndpoint"/> through the zero-copy burst API.
/// </summary>
internal abstract class TcpEndpoint
{
    /// <summary>TCP FIN.</summary>
    protected const byte Fin = 0x01;

    /// <summary>TCP SYN.</summary>
    protected const byte Syn = 0x02;

    /// <summary>TCP PSH.</summary>
    protected const byte Psh = 0x08;

    /// <summary>TCP ACK.</summary>
    protected const byte Ack = 0x10;

    private const int TcpHeader = 20;
    private const int MssOptionLength = 4;
    private const ushort OurWindow = 65535;
    private const byte ProtocolIcmpV6 = 58;
    private const byte NeighbourSolicitation = 135;
    private const byte NeighbourAdvertisement = 136;
    private static readonly TimeSpan RetransmitTimeout = TimeSpan.FromMilliseconds(400);

    private readonly byte[] _localMac;
    private readonly byte[] _remoteMac;
    private readonly byte[] _localAddress;
    private readonly byte[] _remoteAddress;
    private readonly bool _ipv6;
    private readonly ushort _localPort;
    private readonly ushort _remotePort;
    private readonly MemoryStream _received = new();

    private uint _sendUnacknowledged;
    private uint _sendNext;
    private uint _receiveNext;
    private int _peerWindow;
    private bool _peerFin;
    private bool _established;
    private ushort _ipId = 1;
    private Stopwatch _lastProgress = Stopwatch.StartNew();

    protected TcpEndpoint(VirtioNetDevice net, byte[] remoteMac, IPAddress localAddress, IPAddress remoteAddress, ushort localPort, ushort remotePort, int mss, int largestSegment)
    {
        if (localAddress.AddressFamily != remoteAddress.AddressFamily)
        {
            throw new ArgumentException("Both addresses must be IPv4 or both IPv6.", nameof(remoteAddress));
        }

        Net = net;
        _localMac = net.MacAddress.ToArray();
        _remoteMac = remoteMac;
        _localAddress = localAddress.GetAddressBytes();
        _remoteAddress = remoteAddress.GetAddressBytes();
        _ipv6 = localAddress.AddressFamily == AddressFamily.InterNetworkV6;
        _localPort = localPort;
        _remotePort = remotePort;
        Mss = mss;
        LargestSegment = largestSegment;
        if (_ipv6)
        {
            // The kernel's neighbour solicitations go to the solicited-node multicast group of the endpoint's address
            // (RFC 4291 §2.7.1), on MAC 33:33:ff plus its last three bytes (RFC 2464 §7): let them through the filter.
            net.Control.SetMacFilter([], [new PhysicalAddress([0x33, 0x33, 0xff, _localAddress[13], _localAddress[14], _localAddress[15]])]);
        }
    }

    /// <summary>The MSS announced, and the segment size the driver or the device is asked to cut large segments into.</summary>
    public int Mss { get; }

    /// <summary>The most payload handed to the driver in one frame (a multiple of the MSS for TSO, or one MSS).</summary>
    public int LargestSegment { get; }

    /// <summary>Frames received for this connection.</summary>
    public int FramesReceived { get; private set; }

    /// <summary>Frames received longer than an MTU-sized frame could be: coalesced (GSO) frames.</summary>
    public int FramesLargerThanMtu { get; private set; }

    /// <summary>Received frames the driver reported as GSO (gso_type other than NONE).</summary>
    public int GsoFramesReceived { get; private set; }

    /// <summary>
    /// Frames whose metadata did not fit the frame: a GSO type other than TCPV4/TCPV6 by the IP version, a gso_size of 0
    /// (without coalescing information) or above the MSS, a frame above the MTU without GSO, or a partial checksum
    /// anywhere but the TCP checksum field.
    /// </summary>
    public int MetadataMismatches { get; private set; }

    /// <summary>The longest frame received.</summary>
    public int LongestFrameReceived { get; private set; }

    /// <summary>Frames that arrived in more than one receive buffer.</summary>
    public int MultiBufferFrames { get; private set; }

    /// <summary>Partial checksums the endpoint completed itself, where the metadata said.</summary>
    public int PartialChecksumsCompletedHere { get; private set; }

    /// <summary>Frames whose IPv4 or TCP checksum was wrong after the driver's and the endpoint's work (dropped).</summary>
    public int BadChecksums { get; private set; }

    /// <summary>Checksum states the driver reported, counted.</summary>
    public Dictionary<ReceivedChecksumState, int> ChecksumStates { get; } = [];

    /// <summary>Received frames with coalescing information (VIRTIO_NET_HDR_F_RSC_INFO), checksum right or not.</summary>
    public int CoalescedFramesReceived { get; private set; }

    /// <summary>Of those, the frames that stood for more than one TCP segment.</summary>
    public int MultiSegmentFramesReceived { get; private set; }

    /// <summary>The most segments one received frame stood for.</summary>
    public int MostSegmentsInAFrame { get; private set; }

    /// <summary>Coalesced frames whose payload is longer than their segment count times the MSS: a count that cannot be.</summary>
    public int SegmentCountsTooLow { get; private set; }

    /// <summary>
    /// Take frames with coalescing information whose checksum is wrong when the driver reported it
    /// <see cref="ReceivedChecksumState.None"/> (no claim), instead of dropping them: for QEMU's RSC, whose coalesced
    /// frames keep the first segment's checksums. Only for a test that compares the whole stream with what was sent.
    /// </summary>
    public bool AcceptUncheckedCoalescedFrames { get; init; }

    /// <summary>Frames taken under <see cref="AcceptUncheckedCoalescedFrames"/> whose checksums were wrong.</summary>
    public int UncheckedCoalescedFramesAccepted { get; private set; }

    /// <summary>Neighbour solicitations for the endpoint's IPv6 address answered.</summary>
    public int NeighbourSolicitationsAnswered { get; private set; }

    /// <summary>Data segments handed over with a payload above the MSS (for the driver or the device to cut).</summary>
    public int LargeSegmentsSent { get; private set; }

    /// <summary>Data sent again after a timeout.</summary>
    public int Retransmissions { get; private set; }

    /// <summary>The device the endpoint runs on.</summary>
    protected VirtioNetDevice Net { get; }

    public void Connect(TimeSpan timeout)
    {
        uint iss = (uint)Random.Shared.Next();
        _sendUnacknowledged = iss;
        _sendNext = iss + 1;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            SendSegment(iss, Syn, []);
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
                if (SendSegment(_sendNext, Ack | Psh, data.Slice(offset, length)))
                {
                    _sendNext += (uint)length;
                }
            }

            Poll();
            if (_lastProgress.Elapsed > RetransmitTimeout && _sendNext != _sendUnacknowledged)
            {
                // Go-back-N: everything from the first unacknowledged byte again.
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

    /// <summary>Takes every frame waiting from the driver and hands each to <see cref="HandleFrame"/>.</summary>
    protected abstract void Poll();

    /// <summary>
    /// Lends a buffer of at least <paramref name="length"/> bytes for the next frame to leave, waiting a few milliseconds
    /// at most; false when none came free.
    /// </summary>
    protected abstract bool TryStartFrame(int length, out Span<byte> frame);

    /// <summary>Hands the frame written into the buffer from <see cref="TryStartFrame"/> to the driver with <paramref name="request"/>; false on back-pressure.</summary>
    protected abstract bool TryFinishFrame(int length, TransmitOffloadRequest request);

    /// <summary>
    /// One received frame (<paramref name="buffers"/> receive buffers joined), with what the driver said of it: neighbour
    /// solicitations are answered; a TCP segment of this connection has its metadata checked, a partial checksum
    /// completed where the metadata says, every checksum verified, and then counts for the connection.
    /// </summary>
    protected void HandleFrame(Span<byte> frame, ReceivedFrameInfo info, int buffers)
    {
        if (IsNeighbourSolicitation(frame))
        {
            AnswerNeighbourSolicitation(frame);
            return;
        }

        if (!PacketLayout.TryParse(frame, out PacketLayout layout) || !layout.IsTcp || layout.IsIPv6 != _ipv6 ||
            !layout.SourceAddress(frame).SequenceEqual(_remoteAddress) ||
            BinaryPrimitives.ReadUInt16BigEndian(frame[layout.TransportOffset..]) != _remotePort ||
            BinaryPrimitives.ReadUInt16BigEndian(frame[(layout.TransportOffset + 2)..]) != _localPort)
        {
            return;
        }

        FramesReceived++;
        LongestFrameReceived = Math.Max(LongestFrameReceived, frame.Length);
        MultiBufferFrames += buffers > 1 ? 1 : 0;
        ChecksumStates[info.Checksum] = ChecksumStates.GetValueOrDefault(info.Checksum) + 1;
        bool aboveMtu = frame.Length > Net.Mtu + EthernetFrame.HeaderLength;
        FramesLargerThanMtu += aboveMtu ? 1 : 0;
        CheckMetadata(frame, layout, info, aboveMtu);

        // Whatever the driver reported, the endpoint checks: a completed partial checksum must now be right too.
        bool ipHeaderValid = layout.IsIPv6 || InternetChecksum.IsValid(frame[layout.NetworkOffset..layout.TransportOffset]);
        if (!ipHeaderValid || !ReceiveOffload.IsTransportChecksumValid(frame, layout))
        {
            if (AcceptUncheckedCoalescedFrames && info.HasCoalescingInfo && info.Checksum == ReceivedChecksumState.None)
            {
                // The driver made no claim about this checksum; the caller compares the whole stream instead.
                UncheckedCoalescedFramesAccepted++;
            }
            else
            {
                BadChecksums++;
                return;
            }
        }

        HandleSegment(frame, layout);
    }

    // The GSO and checksum metadata against the frame; a partial checksum is completed here, where it says.
    private void CheckMetadata(Span<byte> frame, in PacketLayout layout, ReceivedFrameInfo info, bool aboveMtu)
    {
        if (info.IsGso)
        {
            GsoFramesReceived++;
            VirtioNetGsoType expected = layout.IsIPv6 ? VirtioNetGsoType.TcpV6 : VirtioNetGsoType.TcpV4;
            if (info.GsoType != expected || (info.GsoSize == 0 && !info.HasCoalescingInfo) || info.GsoSize > Mss)
            {
                MetadataMismatches++;
            }
        }
        else if (aboveMtu)
        {
            MetadataMismatches++;
        }

        if (info.HasCoalescingInfo)
        {
            CoalescedFramesReceived++;
            MultiSegmentFramesReceived += info.CoalescedSegments > 1 ? 1 : 0;
            MostSegmentsInAFrame = Math.Max(MostSegmentsInAFrame, info.CoalescedSegments);
            SegmentCountsTooLow += layout.PayloadLength > info.CoalescedSegments * Mss ? 1 : 0;
        }

        if (info.Checksum == ReceivedChecksumState.Partial)
        {
            if (info.ChecksumStart != layout.TransportOffset || info.ChecksumOffset != layout.ChecksumFieldOffset)
            {
                MetadataMismatches++;
            }

            InternetChecksum.CompletePartial(frame[..layout.PacketEnd], info.ChecksumStart, info.ChecksumOffset);
            PartialChecksumsCompletedHere++;
        }
    }

    // ACKs, data and FIN of a checked segment; the SYN-ACK establishes the connection.
    private void HandleSegment(ReadOnlySpan<byte> frame, in PacketLayout layout)
    {
        ReadOnlySpan<byte> tcp = frame[layout.TransportOffset..];
        uint sequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        uint acknowledgment = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        byte flags = tcp[13];
        int window = BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]);
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

        ReadOnlySpan<byte> payload = frame[layout.HeaderLength..layout.PacketEnd];
        if (payload.Length > 0 || (flags & Fin) != 0)
        {
            if (sequence == _receiveNext)
            {
                _received.Write(payload);
                _receiveNext += (uint)payload.Length;
                if ((flags & Fin) != 0)
                {
                    _receiveNext++;
                    _peerFin = true;
                }
            }

            // In order or not, say what is expected next: a gap makes the kernel retransmit.
            SendAck();
        }
    }

    // Sends our FIN and waits for its ACK (and, for a close we start, for the peer's FIN too).
    private void Close(TimeSpan timeout)
    {
        uint fin = _sendNext;
        var clock = Stopwatch.StartNew();
        var resend = Stopwatch.StartNew();
        SendSegment(fin, Fin | Ack, []);
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
                SendSegment(fin, Fin | Ack, []);
                resend.Restart();
            }
        }
    }

    private void SendAck() => SendSegment(_sendNext, Ack, []);

    // One segment with every field but the TCP checksum, which the driver fills (by the device or in software), and
    // for a payload above the MSS the segmentation asked of the driver. False on back-pressure.
    private bool SendSegment(uint sequence, byte flags, ReadOnlySpan<byte> payload)
    {
        // A SYN carries the MSS option (kind 2, length 4) and nothing else, so the kernel uses no window scaling, SACK
        // or timestamps.
        int tcpLength = (flags & Syn) != 0 ? TcpHeader + MssOptionLength : TcpHeader;
        int transportOffset = EthernetFrame.HeaderLength + (_ipv6 ? 40 : 20);
        int length = transportOffset + tcpLength + payload.Length;
        if (!TryStartFrame(length, out Span<byte> f))
        {
            return false;
        }

        WriteIPHeader(f[..length], _remoteMac, _remoteAddress, InternetChecksum.ProtocolTcp, tcpLength + payload.Length);
        Span<byte> tcp = f.Slice(transportOffset, tcpLength);
        tcp.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(tcp, _localPort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], _remotePort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], (flags & Ack) != 0 ? _receiveNext : 0);
        tcp[12] = (byte)((tcpLength / 4) << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], OurWindow);
        if ((flags & Syn) != 0)
        {
            tcp[20] = 2;
            tcp[21] = MssOptionLength;
            BinaryPrimitives.WriteUInt16BigEndian(tcp[22..], (ushort)Mss);
        }

        payload.CopyTo(f[(transportOffset + tcpLength)..]);
        TransmitOffloadRequest request = payload.Length > 0 ? TransmitOffloadRequest.Segmentation(Mss) : TransmitOffloadRequest.Checksum;
        if (!TryFinishFrame(length, request))
        {
            return false;
        }

        LargeSegmentsSent += payload.Length > Mss ? 1 : 0;
        return true;
    }

    // Ethernet and IPv4 (don't fragment, header checksum filled) or IPv6 headers, from us to the given MAC and address,
    // for a transport packet of transportLength bytes.
    private void WriteIPHeader(Span<byte> frame, ReadOnlySpan<byte> destinationMac, ReadOnlySpan<byte> destinationAddress, byte protocol, int transportLength)
    {
        destinationMac.CopyTo(frame);
        _localMac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], _ipv6 ? (ushort)0x86DD : (ushort)0x0800);
        Span<byte> ip = frame[EthernetFrame.HeaderLength..];
        if (_ipv6)
        {
            ip[..40].Clear();
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)transportLength);
            ip[6] = protocol;
            ip[7] = protocol == ProtocolIcmpV6 ? (byte)255 : (byte)64;   // 255 for neighbour discovery (RFC 4861 §7.1.2)
            _localAddress.CopyTo(ip[8..]);
            destinationAddress.CopyTo(ip[24..]);
            return;
        }

        ip = ip[..20];
        ip.Clear();
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + transportLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], _ipId++);
        ip[6] = 0x40;   // don't fragment
        ip[8] = 64;
        ip[9] = protocol;
        _localAddress.CopyTo(ip[12..]);
        destinationAddress.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip));
    }

    private bool IsNeighbourSolicitation(ReadOnlySpan<byte> frame) =>
        _ipv6 && frame.Length >= EthernetFrame.HeaderLength + 40 + 24 && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x86DD &&
        frame[EthernetFrame.HeaderLength + 6] == ProtocolIcmpV6 && frame[EthernetFrame.HeaderLength + 40] == NeighbourSolicitation;

    // A solicited neighbour advertisement (RFC 4861 §4.4: flags S and O, the target address, and the target link-layer
    // address option) when the kernel asks for the endpoint's IPv6 address; other solicitations are not ours. The
    // kernel checks the result.
    private void AnswerNeighbourSolicitation(ReadOnlySpan<byte> solicitation)
    {
        const int ip = EthernetFrame.HeaderLength;
        const int icmp = ip + 40;
        if (!solicitation.Slice(icmp + 8, 16).SequenceEqual(_localAddress))
        {
            return;
        }

        const int length = icmp + 32;
        if (!TryStartFrame(length, out Span<byte> frame))
        {
            return;
        }

        // To the asker's MAC and address (the kernel may ask from its link-local address).
        ReadOnlySpan<byte> asker = solicitation.Slice(ip + 8, 16);
        WriteIPHeader(frame[..length], solicitation.Slice(6, 6), asker, ProtocolIcmpV6, 32);
        Span<byte> advertisement = frame[icmp..length];
        advertisement.Clear();
        advertisement[0] = NeighbourAdvertisement;
        advertisement[4] = 0x60;                                          // solicited, override
        solicitation.Slice(icmp + 8, 16).CopyTo(advertisement[8..]);      // target
        advertisement[24] = 2;                                            // target link-layer address
        advertisement[25] = 1;                                            // in units of 8 bytes
        _localMac.CopyTo(advertisement[26..]);
        BinaryPrimitives.WriteUInt16BigEndian(advertisement[2..], InternetChecksum.ComputeTransport(_localAddress, asker, ProtocolIcmpV6, advertisement));
        if (TryFinishFrame(length, default))
        {
            NeighbourSolicitationsAnswered++;
        }
    }
}
