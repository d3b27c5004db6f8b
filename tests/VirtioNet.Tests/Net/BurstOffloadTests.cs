using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Offloads on the zero-copy burst API against a software device (<see cref="SoftwareNetTransport"/>,
/// <see cref="SoftwareSplitDevice"/>): the checked header metadata handed out with each received packet, headers that
/// lie, checksums completed across segments, and per-packet transmit offload requests written into the ring.
/// </summary>
public sealed class BurstOffloadTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.MrgRxBuf;
    private const ulong GuestGso = VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6;
    private const ulong HostGso = VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private (VirtioNetDevice Net, SoftwareSplitDevice Rx, SoftwareSplitDevice Tx) Open(ulong offered, VirtioNetOptions? options = null)
    {
        var net = VirtioNetDevice.Open(new SoftwareNetTransport(offered), _memory, options ?? new VirtioNetOptions { OperationMode = OperationMode.Poll });
        return (net, new SoftwareSplitDevice(_memory, net.ReceiveQueue, false), new SoftwareSplitDevice(_memory, net.TransmitQueue, false));
    }

    private static byte[] Header(byte flags, VirtioNetGsoType gso, int gsoSize, int csumStart, int csumOffset)
    {
        byte[] header = new byte[12];
        header[0] = flags;
        header[1] = (byte)gso;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), (ushort)gsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), (ushort)csumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)csumOffset);
        return header;
    }

    // Writes a packet across mergeable buffers, at most pieceLength bytes in each (odd lengths test the checksum's
    // byte order across segments), with num_buffers set to match.
    private static int Deliver(SoftwareSplitDevice rx, byte[] header, byte[] frame, int pieceLength = int.MaxValue)
    {
        byte[] packet = [.. header, .. frame];
        var pieces = new List<(DeviceChain Chain, int Length)>();
        int offset = 0;
        while (offset < packet.Length)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            int length = (int)Math.Min(Math.Min(chain.WritableCapacity, pieceLength), packet.Length - offset);
            pieces.Add((chain, length));
            offset += length;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(packet.AsSpan(VirtioNetHeader.NumBuffersOffset), (ushort)pieces.Count);
        offset = 0;
        foreach ((DeviceChain chain, int length) in pieces)
        {
            chain.WriteWritable(packet.AsSpan(offset, length));
            rx.Complete(chain, (uint)length);
            offset += length;
        }

        return pieces.Count;
    }

    // The frame with its TCP/UDP checksum field holding only the pseudo-header sum, as a NEEDS_CSUM sender leaves it.
    private static byte[] Partial(byte[] complete)
    {
        byte[] partial = (byte[])complete.Clone();
        Assert.True(PacketLayout.TryParse(partial, out PacketLayout layout));
        TransmitOffload.ApplyChecksum(partial, layout, new TransmitOffloadDecision { Flags = VirtioNetHeader.FlagNeedsCsum });
        return partial;
    }

    private static byte[] Joined(ReadOnlySpan<ReceivedPacket> segments)
    {
        var bytes = new List<byte>();
        foreach (ReceivedPacket segment in segments)
        {
            bytes.AddRange(segment.Span.ToArray());
        }

        return [.. bytes];
    }

    [Fact]
    public void APartialChecksumIsHandedOutAsTheDeviceWroteItWithWhereToCompleteIt()
    {
        var (net, rx, _) = Open(Modern | GuestGso);
        using (net)
        {
            byte[] partial = Partial(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(400, 1)));
            Deliver(rx, Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.None, 0, 34, 16), partial);

            var packets = new ReceivedPacket[4];
            Assert.Equal(1, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets));
            Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Partial, VirtioNetGsoType.None, 0) { ChecksumStart = 34, ChecksumOffset = 16 }, packets[0].Offload);
            Assert.Equal(partial, packets[0].Span.ToArray());
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, 1));
        }
    }

    [Theory]
    [InlineData(false, int.MaxValue)]
    [InlineData(false, 1001)]
    [InlineData(true, 777)]
    public void AskedToTheDriverCompletesAPartialChecksumInPlaceAcrossTheSegmentsOfAGsoPacket(bool ipv6, int pieceLength)
    {
        var (net, rx, _) = Open(Modern | GuestGso);
        using (net)
        {
            byte[] complete = OffloadFrames.Tcp(ipv6, 1, OffloadFrames.Payload(6001, 2));
            int start = ipv6 ? 54 : 34;
            int buffers = Deliver(rx, Header(VirtioNetHeader.FlagNeedsCsum, ipv6 ? VirtioNetGsoType.TcpV6 : VirtioNetGsoType.TcpV4, 1448, start, 16), Partial(complete), pieceLength);
            Assert.True(buffers > 1);

            var packets = new ReceivedPacket[16];
            Assert.Equal(buffers, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets, ReceiveBurstOptions.CompletePartialChecksums));
            Assert.Equal(buffers, packets[0].SegmentCount);
            Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Completed, ipv6 ? VirtioNetGsoType.TcpV6 : VirtioNetGsoType.TcpV4, 1448), packets[0].Offload);
            Assert.True(packets[0].Offload.IsGso);
            Assert.Equal(default, packets[1].Offload);

            // The checksum is now the one the sender would have computed, written into the device's own buffers.
            Assert.Equal(complete, Joined(packets.AsSpan(0, buffers)));
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, buffers));
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        }
    }

    [Fact]
    public void DataValidIsTheDevicesWordUnlessTheCallerAsksForItToBeVerifiedAcrossSegments()
    {
        var (net, rx, _) = Open(Modern | GuestGso);
        using (net)
        {
            byte[] good = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(3001, 3));
            byte[] bad = (byte[])good.Clone();
            bad[^100] ^= 0x40;
            byte[] header = Header(VirtioNetHeader.FlagDataValid, VirtioNetGsoType.TcpV4, 1448, 0, 0);
            VirtioNetReceiveQueue queue = net.Pairs[0].ReceiveQueue;
            var packets = new ReceivedPacket[16];

            int n = Deliver(rx, header, bad, 999);
            Assert.Equal(n, queue.ReceiveBurst(packets));
            Assert.Equal(ReceivedChecksumState.DeviceValidated, packets[0].Offload.Checksum);
            queue.ReleaseBurst(packets.AsSpan(0, n));

            n = Deliver(rx, header, good, 999);
            Assert.Equal(n, queue.ReceiveBurst(packets, ReceiveBurstOptions.VerifyDataValid));
            Assert.Equal(ReceivedChecksumState.Verified, packets[0].Offload.Checksum);
            queue.ReleaseBurst(packets.AsSpan(0, n));

            n = Deliver(rx, header, bad, 999);
            Assert.Equal(n, queue.ReceiveBurst(packets, ReceiveBurstOptions.VerifyDataValid));
            Assert.Equal(ReceivedChecksumState.Invalid, packets[0].Offload.Checksum);
            queue.ReleaseBurst(packets.AsSpan(0, n));
        }
    }

    public static TheoryData<string, ulong, byte, VirtioNetGsoType, int, int, int> Lies => new()
    {
        { "gso_type TCPV6 on an IPv4 frame", GuestGso, VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV6, 1448, 34, 16 },
        { "a GSO frame without gso_size", GuestGso, VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 0, 34, 16 },
        { "GSO without GUEST_TSO4", VirtioNetFeatures.GuestCsum, VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16 },
        { "NEEDS_CSUM without GUEST_CSUM", 0, VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.None, 0, 34, 16 },
        { "csum_start inside the Ethernet header", GuestGso, VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.None, 0, 4, 16 },
        { "csum_offset past the packet's end", GuestGso, VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 6000 },
        { "RSC_INFO without RSC_EXT", GuestGso, VirtioNetHeader.FlagRscInfo, VirtioNetGsoType.TcpV4, 1448, 3, 0 },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void AHeaderThatLiesIsACountedErrorItsBuffersGoBackAndTheNextPacketStillArrives(string lie, ulong guest, byte flags, VirtioNetGsoType gso, int gsoSize, int csumStart, int csumOffset)
    {
        var (net, rx, _) = Open(Modern | guest);
        using (net)
        {
            int posted = rx.PendingAvailable;
            byte[] frame = Partial(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(4000, 4)));
            Deliver(rx, Header(flags, gso, gsoSize, csumStart, csumOffset), frame);
            byte[] next = OffloadFrames.Tcp(false, 2, OffloadFrames.Payload(100, 5));
            Deliver(rx, new byte[12], next);

            var packets = new ReceivedPacket[16];
            Assert.Equal(1, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets, ReceiveBurstOptions.CompletePartialChecksums));
            Assert.Equal(next, packets[0].Span.ToArray());
            Assert.Equal(ReceivedChecksumState.None, packets[0].Offload.Checksum);
            Assert.True(1 == net.Pairs[0].ReceiveStatistics.Errors, lie);

            // The lying packet's buffers are back with the device before the caller releases anything.
            Assert.Equal(posted - 1, rx.PendingAvailable);
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, 1));
            Assert.Equal(posted, rx.PendingAvailable);
        }
    }

    [Fact]
    public void CoalescingInformationIsHandedOutAndCountedAndALyingCountIsAnError()
    {
        var (net, rx, _) = Open(Modern | GuestGso | HostGso | VirtioNetFeatures.RscExt, new VirtioNetOptions { OperationMode = OperationMode.Poll, ReceiveCoalescingInfo = true });
        using (net)
        {
            byte[] frame = OffloadFrames.Tcp(true, 1, OffloadFrames.Payload(7 * 1428, 6));
            Deliver(rx, Header(VirtioNetHeader.FlagRscInfo, VirtioNetGsoType.TcpV6, 0, 0, 0), frame);
            int n = Deliver(rx, Header(VirtioNetHeader.FlagRscInfo, VirtioNetGsoType.TcpV6, 0, 7, 2), frame);

            var packets = new ReceivedPacket[16];
            Assert.Equal(n, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets));
            Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.None, VirtioNetGsoType.TcpV6, 0) { CoalescedSegments = 7, DuplicateAcks = 2 }, packets[0].Offload);
            Assert.Equal(frame, Joined(packets.AsSpan(0, n)));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(7, net.Pairs[0].ReceiveStatistics.CoalescedSegments);
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, n));
        }
    }

    [Fact]
    public void TheReportedHashTravelsWithTheFirstSegmentOfTheBurstPacket()
    {
        var (net, rx, _) = Open(Modern | GuestGso | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.HashReport);
        using (net)
        {
            Assert.Equal(VirtioNetHeader.HashReportLength, net.HeaderLength);
            byte[] header = new byte[20];
            header[0] = VirtioNetHeader.FlagDataValid;
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), 0x5a5a1234);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), (ushort)VirtioNet.Net.MultiQueue.HashReportType.TcpIpv4);
            int n = Deliver(rx, header, OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(3000, 12)));

            var packets = new ReceivedPacket[16];
            Assert.Equal(n, net.Pairs[0].ReceiveQueue.ReceiveBurst(packets, ReceiveBurstOptions.VerifyDataValid));
            Assert.Equal(new VirtioNet.Net.MultiQueue.ReceiveHash(0x5a5a1234, VirtioNet.Net.MultiQueue.HashReportType.TcpIpv4), packets[0].Hash);
            Assert.Equal(packets[0].Hash, net.Pairs[0].ReceiveQueue.GetHash(packets[0]));
            Assert.Equal(ReceivedChecksumState.Verified, packets[0].Offload.Checksum);
            Assert.False(packets[1].Hash.IsPresent);
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, n));
        }
    }

    [Fact]
    public void TheChecksumRequestIsAPartialChecksumForTheDeviceWithCsumAndComputedInPlaceWithout()
    {
        foreach (bool deviceChecksum in new[] { true, false })
        {
            var (net, _, tx) = Open(Modern | (deviceChecksum ? VirtioNetFeatures.Csum : 0));
            using (net)
            {
                byte[] complete = OffloadFrames.Udp(false, OffloadFrames.Payload(500, 7));
                var packets = new TransmitPacket[1];
                Assert.Equal(1, net.Pairs[0].TransmitQueue.AllocateBurst(packets));
                OffloadFrames.Udp(false, OffloadFrames.Payload(500, 7), zeroChecksum: true).CopyTo(packets[0].Span);
                packets[0] = packets[0].WithLength(complete.Length).WithOffload(TransmitOffloadRequest.Checksum);

                Assert.Equal(1, net.Pairs[0].TransmitQueue.TransmitBurst(packets, out TransmitBurstStatus status));
                Assert.Equal(TransmitBurstStatus.Complete, status);
                Assert.True(tx.TryPop(out DeviceChain? chain));
                byte[] sent = chain.ReadReadable();
                byte[] expectedHeader = deviceChecksum ? Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.None, 0, 34, 6) : new byte[12];
                Assert.Equal(expectedHeader, sent[..12]);
                Assert.Equal(deviceChecksum ? Partial(complete) : complete, sent[12..]);
            }
        }
    }

    [Fact]
    public void ALargeSegmentGoesToTheDeviceWholeWithAGsoHeaderFromALargeBuffer()
    {
        var (net, _, tx) = Open(Modern | HostGso);
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            byte[] complete = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(40000, 8));
            var packets = new TransmitPacket[2];
            Assert.Equal(8, queue.LargeBufferCount);
            Assert.Equal(2, queue.AllocateLargeBurst(packets));
            Assert.Equal(VirtioNetTransmitQueue.MaxSegmentFrameLength, packets[0].Span.Length);
            OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(40000, 8), zeroChecksum: true).CopyTo(packets[0].Span);
            packets[0] = packets[0].WithLength(complete.Length).WithOffload(TransmitOffloadRequest.Segmentation(1448));
            queue.FreeBurst(packets.AsSpan(1));

            Assert.Equal(1, queue.TransmitBurst(packets.AsSpan(0, 1), out TransmitBurstStatus status));
            Assert.Equal(TransmitBurstStatus.Complete, status);
            Assert.True(tx.TryPop(out DeviceChain? chain));
            byte[] sent = chain.ReadReadable();
            byte[] header = Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.HdrLenOffset), 54);
            Assert.Equal(header, sent[..12]);
            Assert.Equal(Partial(complete), sent[12..]);
            Assert.Equal(1, net.Pairs[0].TransmitStatistics.Packets);
        }
    }

    [Fact]
    public void SegmentationTheDeviceCannotDoStopsTheBurstAtThatPacketWithAClearStatus()
    {
        var (net, _, tx) = Open(Modern | VirtioNetFeatures.Csum);
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            Assert.Equal(0, queue.LargeBufferCount);
            Assert.Equal(0, queue.AllocateLargeBurst(new TransmitPacket[1]));
            var packets = new TransmitPacket[3];
            Assert.Equal(3, queue.AllocateBurst(packets));
            for (int i = 0; i < 3; i++)
            {
                byte[] frame = OffloadFrames.Tcp(false, (uint)i, OffloadFrames.Payload(1400, i));
                frame.CopyTo(packets[i].Span);
                packets[i] = packets[i].WithLength(frame.Length).WithOffload(i == 1 ? TransmitOffloadRequest.Segmentation(500) : TransmitOffloadRequest.Checksum);
            }

            Assert.Equal(1, queue.TransmitBurst(packets, out TransmitBurstStatus status));
            Assert.Equal(TransmitBurstStatus.OffloadUnavailable, status);
            Assert.Equal(1, net.Pairs[0].TransmitStatistics.Packets);
            Assert.Equal(1, tx.PendingAvailable);

            // The overload without a status says so with an exception; the packets before it were sent.
            NotSupportedException error = Assert.Throws<NotSupportedException>(() => queue.TransmitBurst(packets.AsSpan(1)));
            Assert.Contains("HOST_TSO4", error.Message, StringComparison.Ordinal);

            // Segmentation is refused, not the buffer: asked for the checksum only, it goes.
            packets[1] = packets[1].WithOffload(TransmitOffloadRequest.Checksum);
            Assert.Equal(2, queue.TransmitBurst(packets.AsSpan(1), out status));
            Assert.Equal(TransmitBurstStatus.Complete, status);
        }
    }

    [Fact]
    public void UdpSegmentationGoesToAUsoDeviceAndACwrSegmentNeedsHostEcn()
    {
        var (net, _, tx) = Open(Modern | HostGso | VirtioNetFeatures.HostUso);
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            var packets = new TransmitPacket[2];
            Assert.Equal(2, queue.AllocateLargeBurst(packets));
            byte[] udp = OffloadFrames.Udp(true, OffloadFrames.Payload(9000, 13));
            udp.CopyTo(packets[0].Span);
            packets[0] = packets[0].WithLength(udp.Length).WithOffload(TransmitOffloadRequest.Segmentation(1200));
            byte[] cwr = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(9000, 14), cwr: true);
            cwr.CopyTo(packets[1].Span);
            packets[1] = packets[1].WithLength(cwr.Length).WithOffload(TransmitOffloadRequest.Segmentation(1448));

            // HOST_USO cuts the UDP datagram; the CWR segment needs HOST_ECN, which was not offered.
            Assert.Equal(1, queue.TransmitBurst(packets, out TransmitBurstStatus status));
            Assert.Equal(TransmitBurstStatus.OffloadUnavailable, status);
            Assert.True(tx.TryPop(out DeviceChain? chain));
            byte[] sent = chain.ReadReadable();
            Assert.Equal((byte)VirtioNetGsoType.UdpL4, sent[VirtioNetHeader.GsoTypeOffset]);
            Assert.Equal(1200, BinaryPrimitives.ReadUInt16LittleEndian(sent.AsSpan(VirtioNetHeader.GsoSizeOffset)));
            Assert.Equal(Partial(udp), sent[12..]);
            queue.FreeBurst(packets.AsSpan(1));
        }
    }

    [Fact]
    public void OffloadRequestsTheCopyingPathRefusesAreRefusedByTheBurstToo()
    {
        var (net, _, _) = Open(Modern | HostGso);
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            var packets = new TransmitPacket[1];
            Assert.Equal(1, queue.AllocateBurst(packets));

            // Not TCP or UDP (an ARP frame's bytes).
            packets[0] = packets[0].WithLength(60).WithOffload(TransmitOffloadRequest.Checksum);
            Assert.Throws<ArgumentException>(() => queue.TransmitBurst(packets, out _));

            // An ordinary buffer's frame may be cut by the device too.
            byte[] frame = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(1400, 9));
            frame.CopyTo(packets[0].Span);
            packets[0] = packets[0].WithLength(frame.Length).WithOffload(TransmitOffloadRequest.Segmentation(1000));
            Assert.Equal(1, queue.TransmitBurst(packets, out _));

            Assert.Equal(1, queue.AllocateLargeBurst(packets));
            byte[] large = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(20000, 9));
            large.CopyTo(packets[0].Span);
            // Segments larger than the MTU allows.
            packets[0] = packets[0].WithLength(large.Length).WithOffload(TransmitOffloadRequest.Segmentation(3000));
            Assert.Throws<ArgumentException>(() => queue.TransmitBurst(packets, out _));

            // Longer than an MTU-sized frame without segmentation.
            packets[0] = packets[0].WithOffload(TransmitOffloadRequest.Checksum);
            Assert.Throws<ArgumentException>(() => queue.TransmitBurst(packets, out _));
            queue.FreeBurst(packets);
            Assert.Equal(0, net.Pairs[0].TransmitStatistics.Errors);
        }
    }

    [Fact]
    public void TheSteadyStateBurstLoopWithOffloadsAllocatesNothing()
    {
        var (net, rx, tx) = Open(Modern | GuestGso | HostGso);
        using (net)
        {
            var sendBuffers = new TransmitPacket[16];
            var received = new ReceivedPacket[64];
            byte[] tcp = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(3000, 10), zeroChecksum: true);
            byte[] wire = [.. Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16), .. Partial(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(1000, 11)))];
            BinaryPrimitives.WriteUInt16LittleEndian(wire.AsSpan(VirtioNetHeader.NumBuffersOffset), 1);
            VirtioNetTransmitQueue txq = net.Pairs[0].TransmitQueue;
            VirtioNetReceiveQueue rxq = net.Pairs[0].ReceiveQueue;

            // Every ordinary buffer gets a TCP/IPv4 frame of 100 bytes once, and keeps it.
            var all = new TransmitPacket[txq.SlotsFree];
            Assert.Equal(all.Length, txq.AllocateBurst(all));
            foreach (TransmitPacket buffer in all)
            {
                Shorten(tcp, 100).CopyTo(buffer.Span);
            }

            txq.FreeBurst(all);
            long allocated = 0;
            for (int round = 0; round < 300; round++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                int n = txq.AllocateBurst(sendBuffers.AsSpan(0, 8));
                for (int i = 0; i < n; i++)
                {
                    sendBuffers[i] = sendBuffers[i].WithLength(100).WithOffload(TransmitOffloadRequest.Checksum);
                }

                int large = txq.AllocateLargeBurst(sendBuffers.AsSpan(n, 2));
                for (int i = n; i < n + large; i++)
                {
                    tcp.AsSpan().CopyTo(sendBuffers[i].Span);
                    sendBuffers[i] = sendBuffers[i].WithLength(tcp.Length).WithOffload(TransmitOffloadRequest.Segmentation(1448));
                }

                txq.TransmitBurst(sendBuffers.AsSpan(0, n + large), out _);
                int got = rxq.ReceiveBurst(received, ReceiveBurstOptions.CompletePartialChecksums | ReceiveBurstOptions.VerifyDataValid);
                rxq.ReleaseBurst(received.AsSpan(0, got));
                long spent = GC.GetAllocatedBytesForCurrentThread() - before;
                if (round >= 100)
                {
                    allocated += spent;
                }

                // The software device allocates as it plays its part; it runs outside the measured span.
                tx.Loopback();
                for (int i = 0; i < 8 && rx.TryPop(out DeviceChain? chain); i++)
                {
                    rx.Complete(chain, (uint)chain.WriteWritable(wire));
                }

            }

            Assert.Equal(0, allocated);
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.True(net.Pairs[0].ReceiveStatistics.Packets > 1500);
            Assert.True(net.Pairs[0].TransmitStatistics.Packets > 2000);
        }
    }

    // The first length bytes of a TCP/IPv4 frame, its IPv4 total length set to match.
    private static byte[] Shorten(byte[] frame, int length)
    {
        byte[] shorter = frame[..length];
        BinaryPrimitives.WriteUInt16BigEndian(shorter.AsSpan(16), (ushort)(length - 14));
        return shorter;
    }
}
