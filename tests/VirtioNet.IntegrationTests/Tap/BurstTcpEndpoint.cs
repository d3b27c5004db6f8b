using System.Diagnostics;
using System.Net;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// The TEST TCP endpoint (<see cref="TcpEndpoint"/>) on the driver's zero-copy burst API only: frames are written
/// straight into lent transmit buffers (segments longer than a frame into the large buffers, with a segmentation
/// request per packet), and received frames are read where the device wrote them, with the offload metadata each packet
/// carries. Every other receive burst asks the driver to complete partial checksums; the others leave them
/// <see cref="ReceivedChecksumState.Partial"/> and the endpoint completes them itself where the metadata says, so both
/// ways are exercised against the same peer. Without a segmentation offload there are no large buffers: give it a
/// <see cref="TcpEndpoint.LargestSegment"/> of one MSS, as the burst API does not segment in software.
/// </summary>
internal sealed class BurstTcpEndpoint : TcpEndpoint
{
    private readonly VirtioNetReceiveQueue _rx;
    private readonly VirtioNetTransmitQueue _tx;
    private readonly ReceivedPacket[] _burst = new ReceivedPacket[512];
    private readonly TransmitPacket[] _one = new TransmitPacket[1];
    private int _bursts;

    public BurstTcpEndpoint(VirtioNetDevice net, byte[] remoteMac, IPAddress localAddress, IPAddress remoteAddress, ushort localPort, ushort remotePort, int mss, int largestSegment)
        : base(net, remoteMac, localAddress, remoteAddress, localPort, remotePort, mss, largestSegment)
    {
        _rx = net.Pairs[0].ReceiveQueue;
        _tx = net.Pairs[0].TransmitQueue;
    }

    // One burst: each packet read where the device wrote it (joined into one array only to parse it here), then released.
    protected override void Poll()
    {
        ReceiveBurstOptions options = (_bursts++ & 1) == 0 ? ReceiveBurstOptions.CompletePartialChecksums : ReceiveBurstOptions.None;
        int count = _rx.ReceiveBurst(_burst, options);
        for (int i = 0; i < count;)
        {
            byte[] frame = BurstPackets.Join(_burst.AsSpan(0, count), i, out int buffers);
            HandleFrame(frame, _burst[i].Offload, buffers);
            i += buffers;
        }

        _rx.ReleaseBurst(_burst.AsSpan(0, count));
    }

    // A lent transmit buffer, a large one when the frame is longer than a frame can be.
    protected override bool TryStartFrame(int length, out Span<byte> frame)
    {
        bool large = length > _tx.MaxFrameLength;
        var clock = Stopwatch.StartNew();
        while ((large ? _tx.AllocateLargeBurst(_one) : _tx.AllocateBurst(_one)) == 0)
        {
            if (clock.Elapsed > TimeSpan.FromMilliseconds(50))
            {
                frame = default;
                return false;
            }

            _tx.Reclaim();
        }

        frame = _one[0].Span;
        return true;
    }

    // The buffer goes with the request (checksum, and segmentation by the device for a payload above the MSS); a buffer
    // the ring had no room for is freed.
    protected override bool TryFinishFrame(int length, TransmitOffloadRequest request)
    {
        _one[0] = _one[0].WithLength(length).WithOffload(request);
        if (_tx.TransmitBurst(_one, out TransmitBurstStatus status) == 1)
        {
            return true;
        }

        _tx.FreeBurst(_one);
        return status == TransmitBurstStatus.RingFull ? false : throw new InvalidOperationException($"The burst refused a segment: {status}.");
    }
}
