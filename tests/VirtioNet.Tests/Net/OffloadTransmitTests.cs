using System.Buffers.Binary;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>Transmit offload decisions: what the device is asked to do and what the driver does itself, by negotiated features.</summary>
public sealed class OffloadTransmitTests
{
    private const ulong Tso = VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6;

    private static (byte[] Frame, PacketLayout Layout, TransmitOffloadDecision Decision) Decide(byte[] frame, TransmitOffloadRequest request, ulong negotiated)
    {
        Assert.True(PacketLayout.TryParse(frame, out PacketLayout layout));
        return (frame, layout, TransmitOffload.Decide(frame, layout, request, negotiated));
    }

    private static byte[] Header(TransmitOffloadDecision decision)
    {
        byte[] header = new byte[12];
        decision.WriteHeader(header);
        return header;
    }

    [Theory]
    [InlineData(false, true, 34, 16)]
    [InlineData(true, true, 54, 16)]
    [InlineData(false, false, 34, 6)]
    [InlineData(true, false, 54, 6)]
    public void WithCsumTheDeviceIsAskedToCompleteAPseudoHeaderSum(bool ipv6, bool tcp, int csumStart, int csumOffset)
    {
        byte[] payload = OffloadFrames.Payload(333, 1);
        byte[] expected = tcp ? OffloadFrames.Tcp(ipv6, 1, payload) : OffloadFrames.Udp(ipv6, payload);
        byte[] frame = tcp ? OffloadFrames.Tcp(ipv6, 1, payload, zeroChecksum: true) : OffloadFrames.Udp(ipv6, payload, zeroChecksum: true);
        var (_, layout, decision) = Decide(frame, TransmitOffloadRequest.Checksum, VirtioNetFeatures.Csum);

        byte[] header = Header(decision);
        Assert.Equal(VirtioNetHeader.FlagNeedsCsum, header[VirtioNetHeader.FlagsOffset]);
        Assert.Equal(VirtioNetHeader.GsoNone, header[VirtioNetHeader.GsoTypeOffset]);
        Assert.Equal(csumStart, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(VirtioNetHeader.CsumStartOffset)));
        Assert.Equal(csumOffset, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(VirtioNetHeader.CsumOffsetOffset)));

        // The field now holds the pseudo-header sum; completing it as a device does gives PacketDotNet's checksum.
        TransmitOffload.ApplyChecksum(frame, layout, decision);
        Assert.False(OffloadFrames.ChecksumsValid(frame));
        InternetChecksum.CompletePartial(frame, csumStart, csumOffset);
        Assert.Equal(expected, frame);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WithoutCsumTheDriverComputesTheChecksumAndTheHeaderStaysZero(bool ipv6)
    {
        byte[] payload = OffloadFrames.Payload(501, 2);
        var (frame, layout, decision) = Decide(OffloadFrames.Tcp(ipv6, 7, payload, zeroChecksum: true), TransmitOffloadRequest.Checksum, 0);
        Assert.True(decision.ChecksumInSoftware);
        Assert.Equal(new byte[12], Header(decision));
        TransmitOffload.ApplyChecksum(frame, layout, decision);
        Assert.Equal(OffloadFrames.Tcp(ipv6, 7, payload), frame);
    }

    [Theory]
    [InlineData(false, VirtioNetGsoType.TcpV4)]
    [InlineData(true, VirtioNetGsoType.TcpV6)]
    public void ALargeTcpSegmentGoesToTheDeviceWithGsoFieldsWhenItCanSegment(bool ipv6, VirtioNetGsoType type)
    {
        var (_, layout, decision) = Decide(OffloadFrames.Tcp(ipv6, 1, OffloadFrames.Payload(30000, 3)), TransmitOffloadRequest.Segmentation(1448), Tso);
        Assert.False(decision.SegmentInSoftware);
        byte[] header = Header(decision);
        Assert.Equal(VirtioNetHeader.FlagNeedsCsum, header[VirtioNetHeader.FlagsOffset]);
        Assert.Equal((byte)type, header[VirtioNetHeader.GsoTypeOffset]);
        Assert.Equal(layout.HeaderLength, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(VirtioNetHeader.HdrLenOffset)));
        Assert.Equal(ipv6 ? 74 : 54, layout.HeaderLength);
        Assert.Equal(1448, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(VirtioNetHeader.GsoSizeOffset)));
        Assert.Equal(layout.TransportOffset, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(VirtioNetHeader.CsumStartOffset)));
    }

    [Theory]
    [InlineData(VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4, true, false)]            // IPv6 needs HOST_TSO6
    [InlineData(VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6, false, false)]      // TSO without CSUM is not usable
    [InlineData(Tso, false, true)]                                                           // CWR needs HOST_ECN
    public void WithoutTheFeatureItNeedsTheSegmentIsCutInSoftware(ulong negotiated, bool ipv6, bool cwr)
    {
        var (_, _, decision) = Decide(OffloadFrames.Tcp(ipv6, 1, OffloadFrames.Payload(5000, 4), cwr: cwr), TransmitOffloadRequest.Segmentation(1448), negotiated);
        Assert.True(decision.SegmentInSoftware);
        Assert.Equal(1448, decision.SoftwareSegmentSize);
        Assert.Equal(VirtioNetGsoType.None, decision.GsoType);
        Assert.Equal((negotiated & VirtioNetFeatures.Csum) != 0, decision.NeedsChecksum);
    }

    [Fact]
    public void ACwrSegmentWithHostEcnCarriesTheEcnBit()
    {
        var (_, _, decision) = Decide(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(5000, 4), cwr: true), TransmitOffloadRequest.Segmentation(1448), Tso | VirtioNetFeatures.HostEcn);
        Assert.Equal(VirtioNetGsoType.TcpV4 | VirtioNetGsoType.Ecn, decision.GsoType);
        Assert.Equal(0x81, Header(decision)[VirtioNetHeader.GsoTypeOffset]);
    }

    [Theory]
    [InlineData(VirtioNetFeatures.Csum | VirtioNetFeatures.HostUso, false)]
    [InlineData(Tso, true)]
    public void LargeUdpUsesUsoWhenNegotiatedAndSoftwareOtherwise(ulong negotiated, bool software)
    {
        var (_, _, decision) = Decide(OffloadFrames.Udp(true, OffloadFrames.Payload(4000, 5)), TransmitOffloadRequest.Segmentation(1400), negotiated);
        Assert.Equal(software, decision.SegmentInSoftware);
        Assert.Equal(software ? VirtioNetGsoType.None : VirtioNetGsoType.UdpL4, decision.GsoType);
    }

    [Fact]
    public void APayloadNoLargerThanTheSegmentSizeIsSentWholeWithItsChecksum()
    {
        var (_, _, decision) = Decide(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(1448, 6)), TransmitOffloadRequest.Segmentation(1448), Tso);
        Assert.Equal(VirtioNetGsoType.None, decision.GsoType);
        Assert.False(decision.SegmentInSoftware);
        Assert.True(decision.NeedsChecksum);
    }

    [Fact]
    public void NoRequestMeansAZeroHeaderAndAnUntouchedFrame()
    {
        byte[] original = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(100, 7), zeroChecksum: true);
        var (frame, layout, decision) = Decide((byte[])original.Clone(), default, Tso);
        TransmitOffload.ApplyChecksum(frame, layout, decision);
        Assert.Equal(original, frame);
        Assert.Equal(new byte[12], Header(decision));
    }

    [Fact]
    public void ASegmentSizeOutsideTheSixteenBitFieldIsRefused()
    {
        byte[] frame = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(100, 7));
        Assert.True(PacketLayout.TryParse(frame, out PacketLayout layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => TransmitOffload.Decide(frame, layout, TransmitOffloadRequest.Segmentation(70000), Tso));
        Assert.Throws<ArgumentOutOfRangeException>(() => TransmitOffload.Decide(frame, layout, new TransmitOffloadRequest(true, -1), Tso));
    }

    [Fact]
    public void TurningOffloadsOffWithdrawsEveryOffloadBitAndSegmentationFollowsChecksum()
    {
        Assert.Equal(0UL, new VirtioNetOptions { Offloads = false }.SupportedFeatures & VirtioNetOptions.OffloadFeatures);
        ulong noCsum = new VirtioNetOptions { DisabledFeatures = VirtioNetFeatures.Csum | VirtioNetFeatures.GuestCsum }.SupportedFeatures;
        Assert.Equal(0UL, noCsum & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostEcn | VirtioNetFeatures.HostUso | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestEcn | VirtioNetFeatures.GuestUso6));
        ulong noTso = new VirtioNetOptions { DisabledFeatures = VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 }.SupportedFeatures;
        Assert.Equal(0UL, noTso & VirtioNetFeatures.HostEcn);
        Assert.NotEqual(0UL, noTso & VirtioNetFeatures.Csum);
    }

    [Fact]
    public void RscExtIsAskedForOnlyWhenSwitchedOnAndWithGuestAndHostTso()
    {
        Assert.Equal(0UL, new VirtioNetOptions().SupportedFeatures & VirtioNetFeatures.RscExt);
        Assert.NotEqual(0UL, new VirtioNetOptions { ReceiveCoalescingInfo = true }.SupportedFeatures & VirtioNetFeatures.RscExt);
        Assert.Equal(0UL, new VirtioNetOptions { ReceiveCoalescingInfo = true, Offloads = false }.SupportedFeatures & VirtioNetFeatures.RscExt);
        Assert.Equal(0UL, new VirtioNetOptions { ReceiveCoalescingInfo = true, DisabledFeatures = VirtioNetFeatures.RscExt }.SupportedFeatures & VirtioNetFeatures.RscExt);
        ulong noGuestTso = VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6;
        Assert.Equal(0UL, new VirtioNetOptions { ReceiveCoalescingInfo = true, DisabledFeatures = noGuestTso }.SupportedFeatures & VirtioNetFeatures.RscExt);
        ulong noHostTso = VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6;
        Assert.Equal(0UL, new VirtioNetOptions { ReceiveCoalescingInfo = true, DisabledFeatures = noHostTso }.SupportedFeatures & VirtioNetFeatures.RscExt);
        Assert.NotEqual(0UL, new VirtioNetOptions { ReceiveCoalescingInfo = true, DisabledFeatures = VirtioNetFeatures.GuestTso4 }.SupportedFeatures & VirtioNetFeatures.RscExt);
    }
}
