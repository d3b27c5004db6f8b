using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// A TEST TCP endpoint above the driver, just enough TCP for a kernel peer to transfer data with: active open with
/// an MSS option (no window scaling, SACK or timestamps, so the kernel uses none), in-order data with cumulative ACKs
/// (out-of-order data is dropped and the ACK repeated), the peer's window respected, go-back-N retransmission on a
/// timeout, and FIN both ways. Not RFC 793: the kernel is the peer that matters. Frames are built and parsed with
/// PacketDotNet; large segments go to the driver with <see cref="TransmitOffloadRequest.Segmentation"/>, so the driver
/// decides between device segmentation (TSO) and software segmentation.
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
            if (packet.Extract<IPv4Packet>() is not { } ip || packet.Extract<TcpPacket>() is not { } candidate ||
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

            // Whatever the driver reported, the endpoint checks: a completed partial checksum must now be right too.
            if (!ip.ValidIPChecksum || !candidate.ValidTcpChecksum)
            {
                BadChecksums++;
                continue;
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
        var ip = new IPv4Packet(_localAddress, _remoteAddress) { TimeToLive = 64, Protocol = PacketDotNet.ProtocolType.Tcp, Id = (ushort)Random.Shared.Next() };
        ip.FragmentFlags = 0x2;   // don't fragment
        ip.PayloadPacket = tcp;
        var ethernet = new EthernetPacket(_localMac, _remoteMac, EthernetType.IPv4) { PayloadPacket = ip };
        ethernet.UpdateCalculatedValues();
        ip.UpdateIPChecksum();
        tcp.Checksum = 0;
        return ethernet.Bytes;
    }
}
