using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using PacketDotNet;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// A TEST TCP endpoint above the driver, over IPv4 or IPv6 (by the addresses it is given), just enough TCP for a kernel
/// peer to transfer data with: active open with
/// an MSS option (no window scaling, SACK or timestamps, so the kernel uses none), in-order data with cumulative ACKs
/// (out-of-order data is dropped and the ACK repeated), the peer's window respected, go-back-N retransmission on a
/// timeout, and FIN both ways. Not RFC 793: the kernel is the peer that matters. Frames are built and parsed with
/// PacketDotNet; large segments go to the driver with <see cref="TransmitOffloadRequest.Segmentation"/>, so the driver
/// decides between device segmentation (TSO) and software segmentation. Over IPv6 it answers the kernel's neighbour
/// solicitations for its address (RFC 4861 §7.2.4), as the kernel resolves the driver's address before it answers.
/// </summary>
internal sealed class TestTcpEndpoint
{
    private const ushort OurWindow = 65535;
    private static readonly TimeSpan RetransmitTimeout = TimeSpan.FromMilliseconds(400);

    private readonly VirtioNetDevice _net;
    private readonly PhysicalAddress _localMac;
    private readonly PhysicalAddress _remoteMac;
    private readonly IPAddress _localAddress;
    private readonly IPAddress _remoteAddress;
    private readonly ushort _localPort;
    private readonly ushort _remotePort;
    private readonly byte[] _receiveBuffer;
    private readonly List<byte> _received = [];

    private uint _sendUnacknowledged;
    private uint _sendNext;
    private uint _receiveNext;
    private int _peerWindow;
    private bool _peerFin;
    private Stopwatch _lastProgress = Stopwatch.StartNew();

    public TestTcpEndpoint(VirtioNetDevice net, byte[] remoteMac, IPAddress localAddress, IPAddress remoteAddress, ushort localPort, ushort remotePort, int mss, int largestSegment)
    {
        _net = net;
        _localMac = new PhysicalAddress(net.MacAddress.ToArray());
        _remoteMac = new PhysicalAddress(remoteMac);
        _localAddress = localAddress;
        _remoteAddress = remoteAddress;
        _localPort = localPort;
        _remotePort = remotePort;
        Mss = mss;
        LargestSegment = largestSegment;
        _receiveBuffer = new byte[net.MaxReceiveFrameLength];
    }

    /// <summary>The MSS announced, and the segment size the driver cuts large segments into.</summary>
    public int Mss { get; }

    /// <summary>The most payload handed to the driver in one call (a multiple of the MSS for TSO, or one MSS).</summary>
    public int LargestSegment { get; }

    /// <summary>Frames received for this connection.</summary>
    public int FramesReceived { get; private set; }

    /// <summary>Frames received longer than an MTU-sized frame could be: coalesced (GSO) frames.</summary>
    public int FramesLargerThanMtu { get; private set; }

    /// <summary>Received frames the driver reported as GSO (gso_type other than NONE).</summary>
    public int GsoFramesReceived { get; private set; }

    /// <summary>The longest frame received.</summary>
    public int LongestFrameReceived { get; private set; }

    /// <summary>Frames whose checksum the endpoint found wrong after the driver's checks (dropped).</summary>
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

    /// <summary>Data segments sent again after a timeout.</summary>
    public int Retransmissions { get; private set; }

    public void Connect(TimeSpan timeout)
    {
        uint iss = (uint)Random.Shared.Next();
        _sendUnacknowledged = iss;
        _sendNext = iss + 1;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            Send(Segment(iss, syn: true, ack: false, fin: false, []), request: TransmitOffloadRequest.Checksum);
            var wait = Stopwatch.StartNew();
            while (wait.Elapsed < TimeSpan.FromMilliseconds(500))
            {
                if (TryTake(out TcpPacket? tcp) && tcp.Synchronize && tcp.Acknowledgment && tcp.AcknowledgmentNumber == iss + 1)
                {
                    _sendUnacknowledged = iss + 1;
                    _receiveNext = tcp.SequenceNumber + 1;
                    _peerWindow = tcp.WindowSize;
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
                byte[] frame = Segment(_sendNext, syn: false, ack: true, fin: false, data.Slice(offset, length));
                if (Send(frame, TransmitOffloadRequest.Segmentation(Mss)))
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
                throw new TimeoutException($"{_received.Count} bytes received, no FIN, in {timeout}.");
            }

            Poll();
        }

        Close(timeout - clock.Elapsed);
        return [.. _received];
    }

    // Sends our FIN and waits for its ACK (and, for a close we start, for the peer's FIN too).
    private void Close(TimeSpan timeout)
    {
        uint fin = _sendNext;
        var clock = Stopwatch.StartNew();
        var resend = Stopwatch.StartNew();
        Send(Segment(fin, syn: false, ack: true, fin: true, []), TransmitOffloadRequest.Checksum);
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
                Send(Segment(fin, syn: false, ack: true, fin: true, []), TransmitOffloadRequest.Checksum);
                resend.Restart();
            }
        }
    }

    // Takes every frame waiting and handles ACKs, data and FIN.
    private void Poll()
    {
        while (TryTake(out TcpPacket? tcp))
        {
            if (tcp.Acknowledgment)
            {
                uint ack = tcp.AcknowledgmentNumber;
                if ((int)(ack - _sendUnacknowledged) > 0 && (int)(ack - _sendNext) <= 0)
                {
                    _sendUnacknowledged = ack;
                    _lastProgress.Restart();
                }

                _peerWindow = tcp.WindowSize;
            }

            byte[] payload = tcp.PayloadData ?? [];
            if (payload.Length > 0 || tcp.Finished)
            {
                if (tcp.SequenceNumber == _receiveNext)
                {
                    _received.AddRange(payload);
                    _receiveNext += (uint)payload.Length;
                    if (tcp.Finished)
                    {
                        _receiveNext++;
                        _peerFin = true;
                    }
                }

                // In order or not, say what is expected next: a gap makes the kernel retransmit.
                SendAck();
            }
        }
    }

    private bool TryTake([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TcpPacket? tcp)
    {
        tcp = null;
        VirtioNetReceiveQueue rx = _net.ReceiveQueues[0];
        while (rx.TryReceive(_receiveBuffer, out int length, out ReceivedFrameInfo info))
        {
            var packet = Packet.ParsePacket(LinkLayers.Ethernet, _receiveBuffer[..length]);
            if (packet.Extract<IcmpV6Packet>() is { Type: IcmpV6Type.NeighborSolicitation })
            {
                AnswerNeighbourSolicitation(_receiveBuffer.AsSpan(0, length));
                continue;
            }

            if (packet.Extract<IPPacket>() is not { } ip || packet.Extract<TcpPacket>() is not { } candidate ||
                !ip.SourceAddress.Equals(_remoteAddress) || candidate.DestinationPort != _localPort || candidate.SourcePort != _remotePort)
            {
                continue;
            }

            FramesReceived++;
            LongestFrameReceived = Math.Max(LongestFrameReceived, length);
            if (length > _net.Mtu + EthernetFrame.HeaderLength)
            {
                FramesLargerThanMtu++;
            }

            if (info.IsGso)
            {
                GsoFramesReceived++;
            }

            ChecksumStates[info.Checksum] = ChecksumStates.GetValueOrDefault(info.Checksum) + 1;
            if (info.HasCoalescingInfo)
            {
                CoalescedFramesReceived++;
                MultiSegmentFramesReceived += info.CoalescedSegments > 1 ? 1 : 0;
                MostSegmentsInAFrame = Math.Max(MostSegmentsInAFrame, info.CoalescedSegments);
                int payload = candidate.PayloadData?.Length ?? 0;
                if (payload > info.CoalescedSegments * Mss)
                {
                    SegmentCountsTooLow++;
                }
            }

            // Whatever the driver reported, the endpoint checks: a completed partial checksum must now be right too.
            if ((ip is IPv4Packet v4 && !v4.ValidIPChecksum) || !candidate.ValidTcpChecksum)
            {
                if (AcceptUncheckedCoalescedFrames && info.HasCoalescingInfo && info.Checksum == ReceivedChecksumState.None)
                {
                    // The driver made no claim about this checksum; the caller compares the whole stream instead.
                    UncheckedCoalescedFramesAccepted++;
                }
                else
                {
                    BadChecksums++;
                    continue;
                }
            }

            tcp = candidate;
            return true;
        }

        return false;
    }

    private void SendAck() => Send(Segment(_sendNext, syn: false, ack: true, fin: false, []), TransmitOffloadRequest.Checksum);

    // Hands a frame to the driver, with the checksum (and segmentation) left to it; false on back-pressure.
    private bool Send(byte[] frame, TransmitOffloadRequest request)
    {
        VirtioNetTransmitQueue tx = _net.TransmitQueues[0];
        var clock = Stopwatch.StartNew();
        while (!tx.TrySend(frame, request))
        {
            if (clock.Elapsed > TimeSpan.FromMilliseconds(50))
            {
                return false;
            }

            tx.Reclaim();
        }

        return true;
    }

    // A segment with every field but the TCP checksum, which the driver fills (by the device or in software).
    private byte[] Segment(uint sequence, bool syn, bool ack, bool fin, ReadOnlySpan<byte> payload)
    {
        // A SYN carries the MSS option (kind 2, length 4) and nothing else, so the kernel uses no window scaling, SACK
        // or timestamps; PacketDotNet cannot grow a header for options, so that header is laid out here (data offset 6).
        TcpPacket tcp = syn
            ? new TcpPacket(new PacketDotNet.Utils.ByteArraySegment([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 0, 0, 0, 2, 4, (byte)(Mss >> 8), (byte)Mss]))
            : new TcpPacket(_localPort, _remotePort);
        tcp.SourcePort = _localPort;
        tcp.DestinationPort = _remotePort;
        tcp.SequenceNumber = sequence;
        tcp.AcknowledgmentNumber = ack ? _receiveNext : 0;
        tcp.Synchronize = syn;
        tcp.Acknowledgment = ack;
        tcp.Finished = fin;
        tcp.Push = payload.Length > 0;
        tcp.WindowSize = OurWindow;
        tcp.PayloadData = payload.ToArray();
        EthernetPacket ethernet;
        if (_localAddress.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var ip = new IPv6Packet(_localAddress, _remoteAddress) { HopLimit = 64, NextHeader = PacketDotNet.ProtocolType.Tcp, PayloadPacket = tcp };
            ethernet = new EthernetPacket(_localMac, _remoteMac, EthernetType.IPv6) { PayloadPacket = ip };
            ethernet.UpdateCalculatedValues();
        }
        else
        {
            var ip = new IPv4Packet(_localAddress, _remoteAddress) { TimeToLive = 64, Protocol = PacketDotNet.ProtocolType.Tcp, Id = (ushort)Random.Shared.Next() };
            ip.FragmentFlags = 0x2;   // don't fragment
            ip.PayloadPacket = tcp;
            ethernet = new EthernetPacket(_localMac, _remoteMac, EthernetType.IPv4) { PayloadPacket = ip };
            ethernet.UpdateCalculatedValues();
            ip.UpdateIPChecksum();
        }

        tcp.Checksum = 0;
        return ethernet.Bytes;
    }

    // A solicited neighbour advertisement (RFC 4861 §4.4: flags S and O, the target address, and the target link-layer
    // address option) when the kernel asks for the endpoint's IPv6 address; other solicitations are not ours. Laid out
    // by hand (PacketDotNet's ICMPv6 packet repeats its header in Bytes); the kernel checks the result.
    private void AnswerNeighbourSolicitation(ReadOnlySpan<byte> solicitation)
    {
        const int ip = 14;
        const int icmp = ip + 40;
        if (solicitation.Length < icmp + 24 || solicitation[ip + 6] != 58 || !new IPAddress(solicitation.Slice(icmp + 8, 16)).Equals(_localAddress))
        {
            return;
        }

        byte[] frame = new byte[icmp + 32];
        solicitation.Slice(6, 6).CopyTo(frame);                                   // to the asker's MAC
        _localMac.GetAddressBytes().CopyTo(frame, 6);
        frame[12] = 0x86;
        frame[13] = 0xDD;
        frame[ip] = 0x60;
        frame[ip + 5] = 32;                                                      // payload length
        frame[ip + 6] = 58;                                                      // ICMPv6
        frame[ip + 7] = 255;                                                     // hop limit (RFC 4861 §7.1.2)
        _localAddress.GetAddressBytes().CopyTo(frame, ip + 8);
        solicitation.Slice(ip + 8, 16).CopyTo(frame.AsSpan(ip + 24));            // to the asker's address
        frame[icmp] = (byte)IcmpV6Type.NeighborAdvertisement;
        frame[icmp + 4] = 0x60;                                                  // solicited, override
        solicitation.Slice(icmp + 8, 16).CopyTo(frame.AsSpan(icmp + 8));         // target
        frame[icmp + 24] = 2;                                                    // target link-layer address
        frame[icmp + 25] = 1;                                                    // in units of 8 bytes
        _localMac.GetAddressBytes().CopyTo(frame, icmp + 26);
        ushort checksum = InternetChecksum.ComputeTransport(frame.AsSpan(ip + 8, 16), frame.AsSpan(ip + 24, 16), 58, frame.AsSpan(icmp));
        frame[icmp + 2] = (byte)(checksum >> 8);
        frame[icmp + 3] = (byte)checksum;
        if (Send(frame, default))
        {
            NeighbourSolicitationsAnswered++;
        }
    }
}
