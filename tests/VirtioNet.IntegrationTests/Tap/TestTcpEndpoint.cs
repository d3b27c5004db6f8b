using System.Diagnostics;
using System.Net;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// The TEST TCP endpoint (<see cref="TcpEndpoint"/>) on the driver's copying API: frames are received with
/// <see cref="VirtioNetQueuePair.TryReceive"/> and sent with
/// <see cref="VirtioNetTransmitQueue.TrySend(ReadOnlySpan{byte}, TransmitOffloadRequest)"/>; large segments go with
/// <see cref="TransmitOffloadRequest.Segmentation"/>, so the driver decides between device segmentation (TSO) and
/// software segmentation.
/// </summary>
internal sealed class TestTcpEndpoint : TcpEndpoint
{
    private readonly byte[] _receiveBuffer;
    private readonly byte[] _transmitBuffer = new byte[VirtioNetTransmitQueue.MaxSegmentFrameLength];

    public TestTcpEndpoint(VirtioNetDevice net, byte[] remoteMac, IPAddress localAddress, IPAddress remoteAddress, ushort localPort, ushort remotePort, int mss, int largestSegment)
        : base(net, remoteMac, localAddress, remoteAddress, localPort, remotePort, mss, largestSegment)
    {
        _receiveBuffer = new byte[net.Pairs[0].MaxReceiveFrameLength];
    }

    protected override void Poll()
    {
        VirtioNetQueuePair rx = Net.Pairs[0];
        while (rx.TryReceive(_receiveBuffer, out int length, out ReceivedFrameInfo info))
        {
            HandleFrame(_receiveBuffer.AsSpan(0, length), info, 1);
        }
    }

    protected override bool TryStartFrame(int length, out Span<byte> frame)
    {
        frame = _transmitBuffer.AsSpan(0, length);
        return true;
    }

    // Hands the frame to the driver, with the checksum (and segmentation) left to it; false on back-pressure.
    protected override bool TryFinishFrame(int length, TransmitOffloadRequest request)
    {
        VirtioNetTransmitQueue tx = Net.Pairs[0].TransmitQueue;
        var clock = Stopwatch.StartNew();
        while (!tx.TrySend(_transmitBuffer.AsSpan(0, length), request))
        {
            if (clock.Elapsed > TimeSpan.FromMilliseconds(50))
            {
                return false;
            }

            tx.Reclaim();
        }

        return true;
    }
}
