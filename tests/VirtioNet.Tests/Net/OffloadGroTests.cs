using System.Buffers.Binary;
using PacketDotNet;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>Software receive coalescing against segments and merged frames built independently with PacketDotNet.</summary>
public sealed class OffloadGroTests : IDisposable
{
    private const uint FirstSequence = 1000;
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.MrgRxBuf | VirtioNetFeatures.Mtu;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private static byte[] Segment(
        bool ipv6,
        uint sequence,
        byte[] payload,
        bool psh = false,
        bool fin = false,
        bool syn = false,
        bool rst = false,
        bool urg = false,
        bool cwr = false,
        ushort sourcePort = 40000,
        uint acknowledgment = 77,
        ushort window = 65535,
        byte[]? options = null,
        byte ttl = 64)
    {
        var tcp = new TcpPacket(sourcePort, 5001)
        {
            SequenceNumber = sequence,
            AcknowledgmentNumber = acknowledgment,
            Acknowledgment = true,
            Push = psh,
            Finished = fin,
            Synchronize = syn,
            Reset = rst,
            Urgent = urg,
            CongestionWindowReduced = cwr,
            WindowSize = window,
        };
        if (options is not null)
        {
            // The header grows by the options; PacketDotNet keeps the bytes as given once the data offset says so.
            byte[] header = new byte[20 + options.Length];
            tcp.HeaderData.AsSpan(0, 20).CopyTo(header);
            options.CopyTo(header, 20);
            header[12] = (byte)((header.Length / 4) << 4);
            tcp = new TcpPacket(new PacketDotNet.Utils.ByteArraySegment(header));
        }

        tcp.PayloadData = payload;
        IPPacket ip = ipv6
            ? new IPv6Packet(OffloadFrames.Source6, OffloadFrames.Destination6) { HopLimit = ttl }
            : new IPv4Packet(OffloadFrames.Source4, OffloadFrames.Destination4) { Id = 0x1234, TimeToLive = ttl };
        ip.Protocol = ProtocolType.Tcp;
        ip.PayloadPacket = tcp;
        var ethernet = new EthernetPacket(OffloadFrames.SourceMac, OffloadFrames.DestinationMac, ipv6 ? EthernetType.IPv6 : EthernetType.IPv4)
        {
            PayloadPacket = ip,
        };
        ethernet.UpdateCalculatedValues();
        tcp.UpdateTcpChecksum();
        if (ip is IPv4Packet v4)
        {
            v4.UpdateIPChecksum();
        }

        return ethernet.Bytes;
    }

    private static SoftwareReceiveCoalescing NewCoalescer(bool recompute = true, int bufferLength = EthernetFrame.MaxGsoFrameLength) =>
        new(new byte[bufferLength], recompute);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ConsecutiveSegmentsOfOneFlowBecomeTheFrameTheSenderWouldHaveSentWhole(bool ipv6)
    {
        byte[] payload = OffloadFrames.Payload(2500, 3);
        SoftwareReceiveCoalescing gro = NewCoalescer();

        Assert.True(gro.TryAdd(Segment(ipv6, FirstSequence, payload[..1000], window: 1000)));
        Assert.True(gro.TryAdd(Segment(ipv6, FirstSequence + 1000, payload[1000..2000], window: 2000)));
        Assert.True(gro.TryAdd(Segment(ipv6, FirstSequence + 2000, payload[2000..], psh: true, window: 3000)));
        Assert.Equal(3, gro.SegmentCount);
        Assert.Equal(1000, gro.SegmentSize);

        byte[] merged = gro.Flush().ToArray();

        // The last segment's window and PSH: the newest advertisement and the push the receiver must honour.
        Assert.Equal(Segment(ipv6, FirstSequence, payload, psh: true, window: 3000), merged);
        Assert.True(OffloadFrames.ChecksumsValid(merged));
        Assert.False(gro.HasPending);
        Assert.Equal(0, gro.Flush().Length);
    }

    [Fact]
    public void WithoutRecomputingTheTcpChecksumOnlyThatFieldDiffersAndTheIPv4HeaderChecksumIsRight()
    {
        byte[] payload = OffloadFrames.Payload(1800, 4);
        SoftwareReceiveCoalescing gro = NewCoalescer(recompute: false);
        Assert.True(gro.TryAdd(Segment(false, FirstSequence, payload[..900])));
        Assert.True(gro.TryAdd(Segment(false, FirstSequence + 900, payload[900..])));

        byte[] merged = gro.Flush().ToArray();
        byte[] expected = Segment(false, FirstSequence, payload);

        Assert.True(PacketLayout.TryParse(merged, out PacketLayout layout));
        int field = layout.TransportOffset + layout.ChecksumFieldOffset;
        Assert.Equal(expected.AsSpan(0, field).ToArray(), merged.AsSpan(0, field).ToArray());
        Assert.Equal(expected.AsSpan(field + 2).ToArray(), merged.AsSpan(field + 2).ToArray());
        Assert.True(InternetChecksum.IsValid(merged.AsSpan(layout.NetworkOffset, 20)));
    }

    [Fact]
    public void AnOutOfOrderSegmentIsRefusedAndTheRunFlushesUnchanged()
    {
        byte[] first = Segment(false, FirstSequence, OffloadFrames.Payload(1000, 5));
        SoftwareReceiveCoalescing gro = NewCoalescer();
        Assert.True(gro.TryAdd(first));

        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 2000, OffloadFrames.Payload(1000, 6))));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence, OffloadFrames.Payload(1000, 5))));
        Assert.Equal(1, gro.SegmentCount);
        Assert.Equal(first, gro.Flush().ToArray());
    }

    [Fact]
    public void SegmentsOfDifferentFlowsAreNotMerged()
    {
        SoftwareReceiveCoalescing gro = NewCoalescer();
        Assert.True(gro.TryAdd(Segment(false, FirstSequence, OffloadFrames.Payload(1000, 7))));

        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(1000, 8), sourcePort: 40001)));
        Assert.False(gro.TryAdd(Segment(true, FirstSequence + 1000, OffloadFrames.Payload(1000, 8))));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(1000, 8), acknowledgment: 78)));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(1000, 8), ttl: 63)));
        Assert.False(gro.TryAdd(OffloadFrames.Udp(false, OffloadFrames.Payload(1000, 8))));
        Assert.Equal(1, gro.SegmentCount);
    }

    [Theory]
    [InlineData("fin")]
    [InlineData("syn")]
    [InlineData("rst")]
    [InlineData("urg")]
    [InlineData("cwr")]
    public void ASegmentWithAFlagBeyondAckAndPshIsNeitherMergedNorStartsARun(string flag)
    {
        byte[] flagged = Segment(
            false,
            FirstSequence + 1000,
            OffloadFrames.Payload(1000, 9),
            fin: flag == "fin",
            syn: flag == "syn",
            rst: flag == "rst",
            urg: flag == "urg",
            cwr: flag == "cwr");
        SoftwareReceiveCoalescing gro = NewCoalescer();
        Assert.True(gro.TryAdd(Segment(false, FirstSequence, OffloadFrames.Payload(1000, 10))));

        Assert.False(SoftwareReceiveCoalescing.IsCoalescable(flagged));
        Assert.False(gro.TryAdd(flagged));
        gro.Flush();
        Assert.False(gro.TryAdd(flagged));
        Assert.False(gro.HasPending);
    }

    [Fact]
    public void SegmentsMergeOnlyWhenTheirTcpOptionsAreTheSame()
    {
        // NOP, NOP, timestamp (kind 8, length 10): the option nearly every Linux segment carries.
        byte[] timestamps1 = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 9];
        byte[] timestamps2 = [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 9];
        byte[] payload = OffloadFrames.Payload(2000, 11);
        byte[] first = Segment(false, FirstSequence, payload[..1000], options: timestamps1);
        Assert.True(PacketLayout.TryParse(first, out PacketLayout layout));
        Assert.Equal(32, layout.TransportHeaderLength);

        SoftwareReceiveCoalescing gro = NewCoalescer();
        Assert.True(gro.TryAdd(first));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, payload[1000..], options: timestamps2)));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, payload[1000..])));
        Assert.True(gro.TryAdd(Segment(false, FirstSequence + 1000, payload[1000..], options: timestamps1)));

        Assert.Equal(Segment(false, FirstSequence, payload, options: timestamps1), gro.Flush().ToArray());
    }

    [Fact]
    public void APushedOrShortSegmentClosesTheRunAndALargerOneIsRefused()
    {
        SoftwareReceiveCoalescing gro = NewCoalescer();
        Assert.True(gro.TryAdd(Segment(false, FirstSequence, OffloadFrames.Payload(1000, 12))));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(1001, 13))));
        Assert.True(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(999, 13))));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1999, OffloadFrames.Payload(500, 14))));
        Assert.Equal(2, gro.SegmentCount);

        gro.Flush();
        Assert.True(gro.TryAdd(Segment(false, FirstSequence, OffloadFrames.Payload(1000, 15), psh: true)));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(1000, 16))));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARunStopsBeforeTheIPPacketWouldExceed64KiB(bool ipv6)
    {
        const int Mss = 1448;
        SoftwareReceiveCoalescing gro = NewCoalescer();
        byte[] payload = OffloadFrames.Payload(Mss * 50, 17);
        int merged = 0;
        while (gro.TryAdd(Segment(ipv6, FirstSequence + (uint)(merged * Mss), payload.AsSpan(merged * Mss, Mss).ToArray())))
        {
            merged++;
        }

        // 45 segments of 1448 bytes with 40 (v4) or 60 (v6) bytes of headers fit in 65535; a 46th does not.
        int headers = ipv6 ? 20 : 40;
        Assert.Equal((65535 - headers) / Mss, merged);
        byte[] frame = gro.Flush().ToArray();
        Assert.Equal(Segment(ipv6, FirstSequence, payload[..(merged * Mss)]), frame);
        Assert.True(OffloadFrames.ChecksumsValid(frame));
    }

    [Fact]
    public void ASmallBufferCapsTheRun()
    {
        byte[] one = Segment(false, FirstSequence, OffloadFrames.Payload(1000, 18));
        SoftwareReceiveCoalescing gro = NewCoalescer(bufferLength: one.Length + 1500);
        Assert.True(gro.TryAdd(one));
        Assert.True(gro.TryAdd(Segment(false, FirstSequence + 1000, OffloadFrames.Payload(1000, 19))));
        Assert.False(gro.TryAdd(Segment(false, FirstSequence + 2000, OffloadFrames.Payload(1000, 20))));
        Assert.Equal(2, gro.SegmentCount);
    }

    [Fact]
    public void EthernetPaddingOfATinySegmentIsNotMergedIntoThePayload()
    {
        // 4 payload bytes make a 58-byte IPv4 frame, padded to the 60-byte minimum; the padding must not become stream data.
        byte[] payload = OffloadFrames.Payload(8, 21);
        byte[] padded1 = Segment(false, FirstSequence, payload[..4]);
        byte[] padded2 = Segment(false, FirstSequence + 4, payload[4..]);
        Assert.Equal(58, padded1.Length);
        Array.Resize(ref padded1, 60);
        Array.Resize(ref padded2, 60);
        padded1[^1] = 0xEE;
        padded2[^1] = 0xEE;
        SoftwareReceiveCoalescing gro = NewCoalescer();

        Assert.True(gro.TryAdd(padded1));
        Assert.True(gro.TryAdd(padded2));

        Assert.Equal(Segment(false, FirstSequence, payload), gro.Flush().ToArray());
    }

    [Fact]
    public void ASegmentWithoutPayloadIsNotCoalescable()
    {
        byte[] pureAck = Segment(false, FirstSequence, []);
        Assert.False(SoftwareReceiveCoalescing.IsCoalescable(pureAck));
        Assert.True(SoftwareReceiveCoalescing.IsCoalescable(Segment(false, FirstSequence, [1])));
    }

    [Fact]
    public void TheOptInReceivePathDeliversARunMergedAndEverythingElseInOrder()
    {
        var transport = new SoftwareNetTransport(Modern);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), 1500);
        using var net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        var rx = new SoftwareSplitDevice(_memory, net.ReceiveQueue, true);
        byte[] payload = OffloadFrames.Payload(4000, 22);
        byte[] udp = OffloadFrames.Udp(false, OffloadFrames.Payload(100, 23));
        byte[] otherFlow = Segment(false, 5, OffloadFrames.Payload(300, 24), sourcePort: 40001);
        byte[][] wire =
        [
            Segment(false, FirstSequence, payload[..1400]),
            Segment(false, FirstSequence + 1400, payload[1400..2800]),
            Segment(false, FirstSequence + 2800, payload[2800..]),
            udp,
            otherFlow,
        ];
        foreach (byte[] frame in wire)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            byte[] data = new byte[VirtioNetHeader.Length + frame.Length];
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
            frame.CopyTo(data, VirtioNetHeader.Length);
            rx.Complete(chain, (uint)chain.WriteWritable(data));
        }

        var gro = new SoftwareReceiveCoalescing(new byte[EthernetFrame.MaxGsoFrameLength], recomputeTransportChecksum: true);
        byte[] destination = new byte[EthernetFrame.MaxGsoFrameLength];
        var delivered = new List<byte[]>();
        while (gro.TryReceive(net.Pairs[0], destination, out int length))
        {
            delivered.Add(destination.AsSpan(0, length).ToArray());
        }

        Assert.Equal(3, delivered.Count);
        Assert.Equal(Segment(false, FirstSequence, payload), delivered[0]);
        Assert.Equal(udp, delivered[1]);
        Assert.Equal(otherFlow, delivered[2]);
    }
}
