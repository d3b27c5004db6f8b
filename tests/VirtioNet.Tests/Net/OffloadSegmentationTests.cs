using System.Buffers.Binary;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>Software segmentation against segments built independently with PacketDotNet.</summary>
public sealed class OffloadSegmentationTests
{
    private static byte[][] Cut(byte[] frame, int mss, bool partial = false)
    {
        Assert.True(PacketLayout.TryParse(frame, out PacketLayout layout));
        int count = SoftwareSegmentation.SegmentCount(layout, mss);
        var segments = new byte[count][];
        for (int i = 0; i < count; i++)
        {
            byte[] room = new byte[2000];
            int length = SoftwareSegmentation.WriteSegment(frame, layout, mss, i, room, partial);
            Assert.Equal(SoftwareSegmentation.SegmentLength(layout, mss, i), length);
            segments[i] = room.AsSpan(0, length).ToArray();
        }

        return segments;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ATcpSegmentOfOddLengthIsCutIntoTheSegmentsATsoDeviceWouldSend(bool ipv6)
    {
        byte[] payload = OffloadFrames.Payload(2501, 1);
        byte[] large = OffloadFrames.Tcp(ipv6, 1000, payload, ipId: 0xfffe, fin: true, psh: true, cwr: true);

        byte[][] segments = Cut(large, 1000);

        // Hand-built: sequence advanced by the payload before it, ids counting up (wrapping), FIN and PSH on the last
        // segment only, CWR on the first only.
        byte[][] expected =
        [
            OffloadFrames.Tcp(ipv6, 1000, payload[..1000], ipId: 0xfffe, cwr: true),
            OffloadFrames.Tcp(ipv6, 2000, payload[1000..2000], ipId: 0xffff),
            OffloadFrames.Tcp(ipv6, 3000, payload[2000..], ipId: 0x0000, fin: true, psh: true),
        ];
        Assert.Equal(expected.Length, segments.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], segments[i]);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UdpIsCutIntoWholeDatagramsEachWithItsOwnLengthAndChecksum(bool ipv6)
    {
        byte[] payload = OffloadFrames.Payload(1203, 2);
        byte[][] segments = Cut(OffloadFrames.Udp(ipv6, payload, ipId: 7), 600);

        byte[][] expected =
        [
            OffloadFrames.Udp(ipv6, payload[..600], ipId: 7),
            OffloadFrames.Udp(ipv6, payload[600..1200], ipId: 8),
            OffloadFrames.Udp(ipv6, payload[1200..], ipId: 9),
        ];
        Assert.Equal(expected, segments);
    }

    [Fact]
    public void APartialChecksumSegmentCompletesToTheFullOne()
    {
        byte[] payload = OffloadFrames.Payload(3001, 3);
        byte[] large = OffloadFrames.Tcp(false, 5, payload);
        byte[][] full = Cut(large, 1448);
        byte[][] partial = Cut(large, 1448, partial: true);
        Assert.True(PacketLayout.TryParse(partial[0], out PacketLayout layout));
        for (int i = 0; i < full.Length; i++)
        {
            Assert.NotEqual(full[i], partial[i]);
            InternetChecksum.CompletePartial(partial[i], layout.TransportOffset, layout.ChecksumFieldOffset);
            Assert.Equal(full[i], partial[i]);
            Assert.True(OffloadFrames.ChecksumsValid(full[i]));
        }
    }

    [Fact]
    public void ATaggedFrameKeepsItsTagInEverySegment()
    {
        byte[] untagged = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(2000, 4));
        byte[] tagged = [.. untagged[..12], 0x81, 0x00, 0x00, 0x05, .. untagged[12..]];
        byte[][] segments = Cut(tagged, 1000);
        Assert.Equal(2, segments.Length);
        foreach (byte[] segment in segments)
        {
            Assert.Equal(new byte[] { 0x81, 0x00, 0x00, 0x05, 0x08, 0x00 }, segment[12..18]);
            Assert.True(PacketLayout.TryParse(segment, out PacketLayout layout));
            Assert.True(ReceiveOffload.IsTransportChecksumValid(segment, layout));
            Assert.True(InternetChecksum.IsValid(segment.AsSpan(18, 20)));
        }
    }

    [Fact]
    public void APayloadThatFitsMakesOneSegmentEqualToTheFrame()
    {
        byte[] frame = OffloadFrames.Tcp(false, 9, OffloadFrames.Payload(100, 5), fin: true);
        byte[][] segments = Cut(frame, 1448);
        Assert.Equal(frame, Assert.Single(segments));
    }

    [Fact]
    public void ADestinationTooShortIsRefused()
    {
        byte[] frame = OffloadFrames.Tcp(false, 9, OffloadFrames.Payload(3000, 5));
        Assert.True(PacketLayout.TryParse(frame, out PacketLayout layout));
        Assert.Throws<ArgumentException>(() => SoftwareSegmentation.WriteSegment(frame, layout, 1448, 0, new byte[100], false));
        Assert.Throws<ArgumentOutOfRangeException>(() => SoftwareSegmentation.WriteSegment(frame, layout, 1448, 3, new byte[2000], false));
    }

    [Fact]
    public void LayoutParsingRefusesFragmentsExtensionHeadersAndLyingLengths()
    {
        byte[] good = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(50, 6));
        Assert.True(PacketLayout.TryParse(good, out PacketLayout layout));
        Assert.Equal((14, 34, 20, 54, good.Length), (layout.NetworkOffset, layout.TransportOffset, layout.TransportHeaderLength, layout.HeaderLength, layout.PacketEnd));

        byte[] fragment = (byte[])good.Clone();
        fragment[20] |= 0x20;   // more fragments
        Assert.False(PacketLayout.TryParse(fragment, out _));

        byte[] tooLong = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(tooLong.AsSpan(16), (ushort)(good.Length - 14 + 1));
        Assert.False(PacketLayout.TryParse(tooLong, out _));

        byte[] badOffset = (byte[])good.Clone();
        badOffset[34 + 12] = 0x40;   // a TCP data offset of 16 bytes, below the minimum
        Assert.False(PacketLayout.TryParse(badOffset, out _));

        byte[] v6 = OffloadFrames.Tcp(true, 1, OffloadFrames.Payload(50, 6));
        Assert.True(PacketLayout.TryParse(v6, out PacketLayout layout6));
        Assert.Equal(54, layout6.TransportOffset);
        v6[14 + 6] = 0;   // next header: hop-by-hop options, not walked
        Assert.False(PacketLayout.TryParse(v6, out _));

        // Ethernet padding after the IP packet is not part of it.
        byte[] padded = [.. good, 0, 0, 0, 0];
        Assert.True(PacketLayout.TryParse(padded, out PacketLayout paddedLayout));
        Assert.Equal(good.Length, paddedLayout.PacketEnd);
    }
}
