using System.Buffers.Binary;
using VirtioNet.IntegrationTests.Tap;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A congestion point in userspace: it forwards whole frames, with their virtio-net headers, between two interfaces of
/// one namespace (QEMU's TAP on one side, a veth to the kernel's namespace on the other) and sets the IPv4 ECN field to
/// CE (Congestion Experienced, RFC 3168 §5) on every Nth ECT-marked TCP data frame going one way, as a router's
/// queue would. The kernel on these machines has no queueing discipline that marks (no <c>red</c>, no
/// <c>fq_codel ecn</c>), so without this relay no kernel TCP ever answers with ECE and CWR, and no segment ever carries
/// the GSO ECN bit (virtio v1.2 §5.1.6.2, VIRTIO_NET_HDR_GSO_ECN).
/// </summary>
/// <remarks>
/// Both sockets are AF_PACKET with PACKET_VNET_HDR, so a large segment crosses the relay as one frame with its GSO type
/// (ECN bit included) and a partial checksum stays partial; the relay counts the GSO frames with the ECN bit that pass
/// each way. Changing the ECN field changes only the IPv4 header's checksum, which the relay recomputes: the TCP
/// pseudo-header does not cover it.
/// </remarks>
internal sealed class CongestionMarkingRelay : IDisposable
{
    private readonly PacketSocket _device;
    private readonly PacketSocket _kernel;
    private readonly Thread[] _threads;
    private readonly int _markEvery;
    private volatile bool _stopping;
    private long _marked;
    private long _ecnFromDevice;
    private long _ecnFromKernel;
    private long _forwarded;

    private CongestionMarkingRelay(PacketSocket device, PacketSocket kernel, bool markTowardKernel, int markEvery)
    {
        _device = device;
        _kernel = kernel;
        _markEvery = markEvery;
        _threads =
        [
            new Thread(() => Forward(_device, _kernel, markTowardKernel, ref _ecnFromDevice)) { IsBackground = true, Name = "relay device->kernel" },
            new Thread(() => Forward(_kernel, _device, !markTowardKernel, ref _ecnFromKernel)) { IsBackground = true, Name = "relay kernel->device" },
        ];
        foreach (Thread thread in _threads)
        {
            thread.Start();
        }
    }

    /// <summary>Frames whose ECN field the relay set to CE.</summary>
    public long Marked => Interlocked.Read(ref _marked);

    /// <summary>GSO frames carrying the ECN bit that came from the device (QEMU's TAP) toward the kernel.</summary>
    public long EcnSegmentsFromDevice => Interlocked.Read(ref _ecnFromDevice);

    /// <summary>GSO frames carrying the ECN bit that came from the kernel (the veth) toward the device.</summary>
    public long EcnSegmentsFromKernel => Interlocked.Read(ref _ecnFromKernel);

    /// <summary>Frames forwarded either way.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>
    /// Opens both interfaces inside <paramref name="ns"/> and starts forwarding; frames toward the kernel side are marked
    /// when <paramref name="markTowardKernel"/>, otherwise frames toward the device.
    /// </summary>
    public static CongestionMarkingRelay Start(NetworkNamespace ns, string deviceSide, string kernelSide, bool markTowardKernel, int markEvery)
    {
        (PacketSocket device, PacketSocket kernel) = ns.Run(() =>
        {
            PacketSocket d = PacketSocket.Open(deviceSide, vnetHeader: true, outgoingToo: false);
            try
            {
                return (d, PacketSocket.Open(kernelSide, vnetHeader: true, outgoingToo: false));
            }
            catch
            {
                d.Dispose();
                throw;
            }
        }).GetAwaiter().GetResult();
        return new CongestionMarkingRelay(device, kernel, markTowardKernel, markEvery);
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (Thread thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }

        _device.Dispose();
        _kernel.Dispose();
    }

    /// <summary>Whether <paramref name="vnetFrame"/> (virtio_net_hdr, then the frame) is a GSO frame with the ECN bit.</summary>
    public static bool IsEcnSegment(ReadOnlySpan<byte> vnetFrame) =>
        vnetFrame.Length > PacketSocket.VnetHeaderLength && ((VirtioNetGsoType)vnetFrame[1] & VirtioNetGsoType.Ecn) != 0
        && ((VirtioNetGsoType)vnetFrame[1] & ~VirtioNetGsoType.Ecn) != VirtioNetGsoType.None;

    private void Forward(PacketSocket from, PacketSocket to, bool mark, ref long ecnSegments)
    {
        byte[] buffer = new byte[PacketSocket.VnetHeaderLength + 65_600];
        long dataFrames = 0;
        while (!_stopping)
        {
            int n = from.Receive(buffer, TimeSpan.FromMilliseconds(200));
            if (n <= PacketSocket.VnetHeaderLength)
            {
                continue;
            }

            Span<byte> frame = buffer.AsSpan(0, n);
            if (IsEcnSegment(frame))
            {
                Interlocked.Increment(ref ecnSegments);
            }

            // DATA_VALID describes a received frame; on transmit the kernel wants only NEEDS_CSUM.
            frame[0] &= VirtioNetHeader.FlagNeedsCsum;
            if (mark && IsTcpData(frame[PacketSocket.VnetHeaderLength..], out int ip) && ++dataFrames % _markEvery == 0 && MarkCongestion(frame[(PacketSocket.VnetHeaderLength + ip)..]))
            {
                Interlocked.Increment(ref _marked);
            }

            if (to.TrySend(buffer, n))
            {
                Interlocked.Increment(ref _forwarded);
            }
        }
    }

    // An untagged IPv4 TCP frame with payload; ip is where its IPv4 header starts.
    private static bool IsTcpData(ReadOnlySpan<byte> frame, out int ip)
    {
        ip = 14;
        if (frame.Length < ip + 40 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800 || frame[ip] >> 4 != 4 || frame[ip + 9] != 6)
        {
            return false;
        }

        int ihl = (frame[ip] & 0x0F) * 4;
        if (ihl < 20 || frame.Length < ip + ihl + 20)
        {
            return false;
        }

        int tcpHeader = (frame[ip + ihl + 12] >> 4) * 4;
        return frame.Length > ip + ihl + tcpHeader;
    }

    // ECT(0) or ECT(1) becomes CE; the header checksum is computed again over the header's own length.
    private static bool MarkCongestion(Span<byte> ipHeader)
    {
        int ecn = ipHeader[1] & 0x03;
        if (ecn is 0 or 3)
        {
            return false;
        }

        ipHeader[1] |= 0x03;
        int ihl = (ipHeader[0] & 0x0F) * 4;
        ipHeader[10] = 0;
        ipHeader[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ipHeader[10..], InternetChecksum.Compute(ipHeader[..ihl]));
        return true;
    }
}
