using System.Buffers.Binary;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Receive offload checks: partial checksums completed, DATA_VALID re-checked, coalescing information (RSC_INFO) read,
/// inconsistent headers refused.
/// </summary>
public sealed class OffloadReceiveTests
{
    private const ulong Guest = VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6;
    private const ulong Rsc = Guest | VirtioNetFeatures.RscExt;
    private const byte RscNeedsCsum = VirtioNetHeader.FlagRscInfo | VirtioNetHeader.FlagNeedsCsum;

    private static byte[] Header(byte flags, VirtioNetGsoType gso = VirtioNetGsoType.None, int gsoSize = 0, int csumStart = 0, int csumOffset = 0)
    {
        byte[] header = new byte[12];
        header[VirtioNetHeader.FlagsOffset] = flags;
        header[VirtioNetHeader.GsoTypeOffset] = (byte)gso;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.GsoSizeOffset), (ushort)gsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.CsumStartOffset), (ushort)csumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.CsumOffsetOffset), (ushort)csumOffset);
        return header;
    }

    // A frame as a kernel sends it with CHECKSUM_PARTIAL: the pseudo-header sum in the checksum field.
    private static byte[] Partial(byte[] complete)
    {
        byte[] frame = (byte[])complete.Clone();
        Assert.True(PacketLayout.TryParse(frame, out PacketLayout layout));
        TransmitOffload.ApplyChecksum(frame, layout, new TransmitOffloadDecision { Flags = VirtioNetHeader.FlagNeedsCsum });
        return frame;
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void APartialChecksumIsCompletedForTheCaller(bool ipv6, bool tcp)
    {
        byte[] payload = OffloadFrames.Payload(777, 1);
        byte[] complete = tcp ? OffloadFrames.Tcp(ipv6, 3, payload) : OffloadFrames.Udp(ipv6, payload);
        byte[] frame = Partial(complete);
        Assert.NotEqual(complete, frame);
        int start = ipv6 ? 54 : 34;
        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagNeedsCsum, csumStart: start, csumOffset: tcp ? 16 : 6), frame, Guest, true, out ReceivedFrameInfo info));
        Assert.Equal(ReceivedChecksumState.Completed, info.Checksum);
        Assert.Equal(complete, frame);
    }

    [Fact]
    public void EthernetPaddingIsLeftOutOfTheCompletedSum()
    {
        byte[] complete = OffloadFrames.Tcp(false, 3, []);
        byte[] frame = [.. Partial(complete), 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF];
        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagNeedsCsum, csumStart: 34, csumOffset: 16), frame, Guest, true, out _));
        Assert.Equal(complete, frame[..complete.Length]);
    }

    [Fact]
    public void DataValidIsRecheckedAndALieIsReported()
    {
        byte[] good = OffloadFrames.Tcp(false, 3, OffloadFrames.Payload(100, 2));
        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagDataValid), good, Guest, true, out ReceivedFrameInfo info));
        Assert.Equal(ReceivedChecksumState.Verified, info.Checksum);

        byte[] bad = (byte[])good.Clone();
        bad[^1] ^= 0x5A;
        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagDataValid), bad, Guest, true, out info));
        Assert.Equal(ReceivedChecksumState.Invalid, info.Checksum);

        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagDataValid), bad, Guest, false, out info));
        Assert.Equal(ReceivedChecksumState.DeviceValidated, info.Checksum);
    }

    [Fact]
    public void AGsoFrameReportsItsTypeAndSegmentSize()
    {
        byte[] frame = Partial(OffloadFrames.Tcp(false, 3, OffloadFrames.Payload(20000, 3)));
        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16), frame, Guest, true, out ReceivedFrameInfo info));
        Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Completed, VirtioNetGsoType.TcpV4, 1448), info);
        Assert.True(info.IsGso);
        Assert.True(OffloadFrames.ChecksumsValid(frame));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ACoalescedFrameReportsItsSegmentsAndDuplicateAcksAndItsChecksumIsCompletedWhereTheFrameSays(bool ipv6)
    {
        // csum_start and csum_offset hold 20 segments and 2 duplicated ACKs: were they taken for a checksum position the
        // sum would land in the Ethernet header. The TCP checksum's place comes from the frame itself (§5.1.6.4.2).
        byte[] complete = OffloadFrames.Tcp(ipv6, 3, OffloadFrames.Payload(20 * 1448, 7));
        byte[] frame = Partial(complete);
        VirtioNetGsoType gso = ipv6 ? VirtioNetGsoType.TcpV6 : VirtioNetGsoType.TcpV4;
        Assert.True(ReceiveOffload.TryProcess(Header(RscNeedsCsum, gso, 1448, 20, 2), frame, Rsc, true, out ReceivedFrameInfo info));
        Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Completed, gso, 1448) { CoalescedSegments = 20, DuplicateAcks = 2 }, info);
        Assert.True(info.HasCoalescingInfo);
        Assert.Equal(complete, frame);
    }

    [Fact]
    public void ACoalescedFrameAsQemuWritesItIsReportedWithItsChecksumUnchecked()
    {
        // QEMU 7.2 and 10.0: flags RSC_INFO alone, gso_size 0, and the first segment's checksum left in the frame. The
        // driver must not rely on that checksum (§5.1.6.4.2) and says so; the frame is not touched.
        byte[] frame = OffloadFrames.Tcp(false, 3, OffloadFrames.Payload(4 * 1448, 8));
        frame[^1] ^= 0xFF;
        byte[] before = (byte[])frame.Clone();
        Assert.True(ReceiveOffload.TryProcess(Header(VirtioNetHeader.FlagRscInfo, VirtioNetGsoType.TcpV4, 0, 4, 0), frame, Rsc, true, out ReceivedFrameInfo info));
        Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.None, VirtioNetGsoType.TcpV4, 0) { CoalescedSegments = 4 }, info);
        Assert.Equal(before, frame);
    }

    [Theory]
    [InlineData(false, ReceivedChecksumState.Verified)]
    [InlineData(true, ReceivedChecksumState.Invalid)]
    public void ACoalescedFrameMarkedDataValidIsRechecked(bool corrupt, ReceivedChecksumState expected)
    {
        byte[] frame = OffloadFrames.Tcp(true, 3, OffloadFrames.Payload(3 * 1428, 9));
        if (corrupt)
        {
            frame[^3] ^= 0x40;
        }

        byte flags = VirtioNetHeader.FlagRscInfo | VirtioNetHeader.FlagDataValid;
        Assert.True(ReceiveOffload.TryProcess(Header(flags, VirtioNetGsoType.TcpV6, 1428, 3, 0), frame, Rsc, true, out ReceivedFrameInfo info));
        Assert.Equal(expected, info.Checksum);
        Assert.Equal(3, info.CoalescedSegments);
    }

    [Fact]
    public void FlagBitsTheDriverDoesNotRecogniseAreIgnored()
    {
        // §5.1.6.4.2: "The driver MUST ignore flag bits that it does not recognize." 0x08 (VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM
        // in later versions of the spec) and the high bits leave the frame as it would be without them.
        byte[] frame = OffloadFrames.Tcp(ipv6: false, 1, OffloadFrames.Payload(100, 1));
        byte[] header = Header(0x08 | 0x80);
        Assert.True(ReceiveOffload.TryProcess(header, frame, Guest, verifyDataValid: true, out ReceivedFrameInfo info));
        Assert.Equal(ReceivedChecksumState.None, info.Checksum);
        Assert.True(ReceiveOffload.TryProcess(header, frame, 0, verifyDataValid: true, out _));
    }

    public static TheoryData<string, byte[], bool, ulong> Inconsistent() => new()
    {
        { "flags without GUEST_CSUM", Header(VirtioNetHeader.FlagDataValid), false, 0 },
        { "RSC_INFO without RSC_EXT", Header(VirtioNetHeader.FlagRscInfo), false, Guest },
        { "TCPV4 without GUEST_TSO4", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16), false, VirtioNetFeatures.GuestCsum },
        { "TCPV6 on an IPv4 frame", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV6, 1448, 34, 16), false, Guest },
        { "TCPV4 on an IPv6 frame", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 54, 16), true, Guest },
        { "gso_size 0", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 0, 34, 16), false, Guest },
        { "ECN without GUEST_ECN", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4 | VirtioNetGsoType.Ecn, 1448, 34, 16), false, Guest },
        { "ECN alone", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.Ecn, 1448, 34, 16), false, Guest | VirtioNetFeatures.GuestEcn },
        { "unknown gso_type 2", Header(VirtioNetHeader.FlagNeedsCsum, (VirtioNetGsoType)2, 1448, 34, 16), false, Guest },
        { "UDP_L4 on a TCP frame", Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.UdpL4, 1448, 34, 16), false, Guest | VirtioNetFeatures.GuestUso4 },
        { "csum_start + csum_offset beyond the packet", Header(VirtioNetHeader.FlagNeedsCsum, csumStart: 34, csumOffset: 60000), false, Guest },
        { "csum_start inside the Ethernet header", Header(VirtioNetHeader.FlagNeedsCsum, csumStart: 2, csumOffset: 0), false, Guest },
        { "RSC_INFO with gso_size and segments but without RSC_EXT", Header(RscNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 3, 0), false, Guest },
        { "RSC_INFO with zero segments", Header(RscNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 0, 0), false, Rsc },
        { "RSC_INFO with more segments than payload bytes", Header(RscNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 3002, 0), false, Rsc },
        { "RSC_INFO on a frame that is not GSO", Header(RscNeedsCsum, VirtioNetGsoType.None, 0, 3, 0), false, Rsc },
        { "RSC_INFO with gso_type UDP_L4", Header(RscNeedsCsum, VirtioNetGsoType.UdpL4, 1448, 3, 0), false, Rsc | VirtioNetFeatures.GuestUso4 },
        { "RSC_INFO with TCPV6 on an IPv4 frame", Header(RscNeedsCsum, VirtioNetGsoType.TcpV6, 1448, 3, 0), false, Rsc },
        { "RSC_INFO with TCPV4 without GUEST_TSO4", Header(RscNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 3, 0), false, VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.RscExt },
        { "RSC_INFO without GUEST_CSUM", Header(VirtioNetHeader.FlagRscInfo, VirtioNetGsoType.TcpV4, 0, 3, 0), false, VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.RscExt },
    };

    [Theory]
    [MemberData(nameof(Inconsistent))]
    public void AnInconsistentHeaderIsRefused(string why, byte[] header, bool ipv6, ulong negotiated)
    {
        byte[] frame = Partial(OffloadFrames.Tcp(ipv6, 3, OffloadFrames.Payload(3000, 4)));
        byte[] before = (byte[])frame.Clone();
        Assert.False(ReceiveOffload.TryProcess(header, frame, negotiated, true, out _), why);
        Assert.Equal(before, frame);
    }

    [Fact]
    public void AZeroHeaderLeavesTheFrameAlone()
    {
        byte[] frame = OffloadFrames.Tcp(false, 3, OffloadFrames.Payload(10, 5), zeroChecksum: true);
        byte[] before = (byte[])frame.Clone();
        Assert.True(ReceiveOffload.TryProcess(new byte[12], frame, 0, true, out ReceivedFrameInfo info));
        Assert.Equal(default, info);
        Assert.Equal(before, frame);
    }
}
