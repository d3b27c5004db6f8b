using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// Offloads through the driver against a software device (<see cref="SoftwareNetTransport"/>, <see cref="SoftwareSplitDevice"/>):
/// headers a real device would not write, and what the driver puts in the transmit ring.
/// </summary>
public sealed class OffloadDeviceTests : IDisposable
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

    private static byte[] Header(byte flags, VirtioNetGsoType gso, int gsoSize, int csumStart, int csumOffset, int numBuffers)
    {
        byte[] header = new byte[12];
        header[0] = flags;
        header[1] = (byte)gso;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), (ushort)gsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), (ushort)csumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)csumOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(10), (ushort)numBuffers);
        return header;
    }

    // Writes a packet across as many mergeable buffers as it needs, header first, with num_buffers set to match.
    private static void Deliver(SoftwareSplitDevice rx, byte[] header, byte[] frame)
    {
        byte[] packet = [.. header, .. frame];
        var chains = new List<DeviceChain>();
        long capacity = 0;
        while (capacity < packet.Length)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            chains.Add(chain);
            capacity += chain.WritableCapacity;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(packet.AsSpan(10), (ushort)chains.Count);
        int offset = 0;
        foreach (DeviceChain chain in chains)
        {
            int length = (int)Math.Min(chain.WritableCapacity, packet.Length - offset);
            chain.WriteWritable(packet.AsSpan(offset, length));
            rx.Complete(chain, (uint)length);
            offset += length;
        }
    }

    [Fact]
    public void AHeaderWithInconsistentGsoFieldsIsACountedDropAndTheNextFrameStillArrives()
    {
        var (net, rx, _) = Open(Modern | GuestGso);
        using (net)
        {
            Assert.Equal(EthernetFrame.MaxGsoFrameLength, net.Pairs[0].MaxReceiveFrameLength);
            byte[] complete = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(6000, 1));
            byte[] partial = (byte[])complete.Clone();
            Assert.True(PacketLayout.TryParse(partial, out PacketLayout layout));
            TransmitOffload.ApplyChecksum(partial, layout, new TransmitOffloadDecision { Flags = VirtioNetHeader.FlagNeedsCsum });

            // gso_type TCPV6 on an IPv4 frame, spanning four buffers: dropped, counted, every buffer given back.
            Deliver(rx, Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV6, 1448, 34, 16, 0), partial);
            Deliver(rx, Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16, 0), partial);

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length, out ReceivedFrameInfo info));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Packets);
            Assert.Equal(complete, received.AsSpan(0, length).ToArray());
            Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Completed, VirtioNetGsoType.TcpV4, 1448), info);
            // All eight buffers of the two packets went back: the whole ring is available again.
            Assert.Equal(256, rx.PendingAvailable);
        }
    }

    [Fact]
    public void CoalescedSegmentsAreReportedAndCountedAndALyingCountIsADrop()
    {
        var (net, rx, _) = Open(Modern | GuestGso | HostGso | VirtioNetFeatures.RscExt, new VirtioNetOptions { OperationMode = OperationMode.Poll, ReceiveCoalescingInfo = true });
        using (net)
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioNetFeatures.RscExt);
            byte[] complete = OffloadFrames.Tcp(true, 1, OffloadFrames.Payload(7 * 1428, 3));
            byte[] partial = (byte[])complete.Clone();
            Assert.True(PacketLayout.TryParse(partial, out PacketLayout layout));
            TransmitOffload.ApplyChecksum(partial, layout, new TransmitOffloadDecision { Flags = VirtioNetHeader.FlagNeedsCsum });
            const byte flags = VirtioNetHeader.FlagRscInfo | VirtioNetHeader.FlagNeedsCsum;

            // Zero segments: a counted drop. Then 7 segments and 1 duplicated ACK, across several buffers.
            Deliver(rx, Header(flags, VirtioNetGsoType.TcpV6, 1428, 0, 0, 0), partial);
            Deliver(rx, Header(flags, VirtioNetGsoType.TcpV6, 1428, 7, 1, 0), partial);

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length, out ReceivedFrameInfo info));
            Assert.Equal(complete, received.AsSpan(0, length).ToArray());
            Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Completed, VirtioNetGsoType.TcpV6, 1428) { CoalescedSegments = 7, DuplicateAcks = 1 }, info);
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Packets);
            Assert.Equal(7, net.Pairs[0].ReceiveStatistics.CoalescedSegments);
            Assert.Equal(256, rx.PendingAvailable);
        }
    }

    [Fact]
    public void RscInfoFromADeviceThatWasNotAllowedToSendItIsDropped()
    {
        // The device offers RSC_EXT, but the driver was not told to take it: RSC_INFO is then a lie (§5.1.6.4.1).
        var (net, rx, _) = Open(Modern | GuestGso | HostGso | VirtioNetFeatures.RscExt);
        using (net)
        {
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetFeatures.RscExt);
            byte[] frame = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(3000, 2));
            Deliver(rx, Header(VirtioNetHeader.FlagRscInfo, VirtioNetGsoType.TcpV4, 1448, 3, 0, 0), frame);
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.False(net.Pairs[0].TryReceive(received, out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.CoalescedSegments);
        }
    }

    [Fact]
    public void AGsoHeaderFromADeviceThatWasNotAllowedToSendOneIsDropped()
    {
        var (net, rx, _) = Open(Modern | VirtioNetFeatures.GuestCsum);
        using (net)
        {
            byte[] frame = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(1000, 2));
            Deliver(rx, Header(0, VirtioNetGsoType.TcpV4, 536, 0, 0, 1), frame);
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.False(net.Pairs[0].TryReceive(received, out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
        }
    }

    [Fact]
    public void WithHostTsoALargeSegmentIsOneGsoPacketInALargeSlot()
    {
        var (net, _, tx) = Open(Modern | HostGso);
        using (net)
        {
            byte[] payload = OffloadFrames.Payload(30001, 3);
            byte[] frame = OffloadFrames.Tcp(false, 100, payload, zeroChecksum: true);
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            Assert.True(queue.TrySend(frame, TransmitOffloadRequest.Segmentation(1448)));

            Assert.True(tx.TryPop(out DeviceChain? chain));
            Assert.False(tx.TryPop(out _));
            byte[] seen = chain.ReadReadable();
            Assert.Equal(12 + frame.Length, seen.Length);
            byte[] expected = Header(VirtioNetHeader.FlagNeedsCsum, VirtioNetGsoType.TcpV4, 1448, 34, 16, 0);
            Assert.Equal(expected[..2], seen[..2]);
            Assert.Equal(expected[4..10], seen[4..10]);
            Assert.Equal(54, BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(2)));

            // What the device completes is PacketDotNet's checksum of the whole segment.
            byte[] sent = seen[12..];
            InternetChecksum.CompletePartial(sent, 34, 16);
            Assert.Equal(OffloadFrames.Tcp(false, 100, payload), sent);

            tx.Complete(chain, 0);
            Assert.Equal(1, queue.Reclaim());
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WithoutHostTsoTheSegmentIsCutInSoftwareIntoFramesThatFitTheMtu(bool csum)
    {
        var (net, _, tx) = Open(Modern | (csum ? VirtioNetFeatures.Csum : 0));
        using (net)
        {
            byte[] payload = OffloadFrames.Payload(10001, 4);
            byte[] frame = OffloadFrames.Tcp(true, 100, payload, fin: true, zeroChecksum: true);
            Assert.True(net.Pairs[0].TransmitQueue.TrySend(frame, TransmitOffloadRequest.Segmentation(1440)));

            List<DeviceChain> chains = tx.PopAll();
            Assert.Equal(7, chains.Count);
            var joined = new List<byte>();
            for (int i = 0; i < chains.Count; i++)
            {
                byte[] seen = chains[i].ReadReadable();
                Assert.Equal(csum ? VirtioNetHeader.FlagNeedsCsum : 0, seen[0]);
                Assert.Equal(0, seen[1]);
                byte[] segment = seen[12..];
                Assert.True(segment.Length <= net.Pairs[0].MaxTransmitFrameLength);
                if (csum)
                {
                    InternetChecksum.CompletePartial(segment, 54, 16);
                }

                int payloadLength = Math.Min(1440, payload.Length - (i * 1440));
                Assert.Equal(OffloadFrames.Tcp(true, (uint)(100 + (i * 1440)), payload.AsSpan(i * 1440, payloadLength).ToArray(), fin: i == 6), segment);
                joined.AddRange(segment[74..]);
            }

            Assert.Equal(payload, joined.ToArray());
            Assert.Equal(7, net.Pairs[0].TransmitStatistics.Packets);
        }
    }

    [Fact]
    public void SoftwareSegmentationIsAllOrNothingUnderBackPressure()
    {
        var (net, _, tx) = Open(Modern, new VirtioNetOptions { OperationMode = OperationMode.Poll, MaxQueueSize = 8 });
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            Assert.True(queue.TrySend(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(100, 5)), TransmitOffloadRequest.Checksum));
            Assert.Equal(7, queue.SlotsFree);

            // Eight segments do not fit seven free slots: nothing is queued.
            Assert.False(queue.TrySend(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(8 * 1000, 5)), TransmitOffloadRequest.Segmentation(1000)));
            Assert.Single(tx.PopAll());
            Assert.Throws<ArgumentException>(() => queue.TrySend(OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(9 * 1000, 5)), TransmitOffloadRequest.Segmentation(1000)));
            Assert.Throws<ArgumentException>(() => queue.TrySend(new byte[60], TransmitOffloadRequest.Checksum));
        }
    }

    [Fact]
    public void WithOffloadsOffNothingIsNegotiatedAndTheChecksumIsComputedByTheDriver()
    {
        var (net, _, tx) = Open(Modern | HostGso | GuestGso, new VirtioNetOptions { OperationMode = OperationMode.Poll, Offloads = false });
        using (net)
        {
            Assert.Equal(0UL, net.NegotiatedFeatures & VirtioNetOptions.OffloadFeatures);
            byte[] payload = OffloadFrames.Payload(700, 6);
            Assert.True(net.Pairs[0].TransmitQueue.TrySend(OffloadFrames.Tcp(false, 1, payload, zeroChecksum: true), TransmitOffloadRequest.Checksum));
            Assert.True(tx.TryPop(out DeviceChain? chain));
            byte[] seen = chain.ReadReadable();
            Assert.Equal(new byte[12], seen[..12]);
            Assert.Equal(OffloadFrames.Tcp(false, 1, payload), seen[12..]);
        }
    }

    [Fact]
    public void SegmentationOfferedWithoutTheChecksumItRequiresIsNotAcceptedAndLargeUdpIsCutBySoftware()
    {
        // QEMU 10 with csum=off (or guest_csum=off) still offers HOST_TSO4/6, HOST_ECN and HOST_USO (GUEST_TSO/USO):
        // §5.1.3.1 makes them require VIRTIO_NET_F_CSUM (GUEST_CSUM), and §2.2.1 forbids accepting them without it.
        const ulong hostUso = VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostEcn | VirtioNetFeatures.HostUso;
        const ulong guestUso = VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestEcn | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;
        var transport = new SoftwareNetTransport(Modern | hostUso | guestUso | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlRxExtra);
        using var net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        var tx = new SoftwareSplitDevice(_memory, net.TransmitQueue, false);

        Assert.Equal(Modern, net.NegotiatedFeatures);
        Assert.Equal(Modern, transport.DriverFeatures);
        Assert.Equal(0UL, net.Pairs[0].TransmitQueue.OffloadFeatures & hostUso);

        // A large UDP payload is cut by the driver into whole datagrams with complete checksums.
        byte[] payload = OffloadFrames.Payload(3000, 9);
        Assert.True(net.Pairs[0].TransmitQueue.TrySend(OffloadFrames.Udp(false, payload, zeroChecksum: true), TransmitOffloadRequest.Segmentation(1000)));
        DeviceChain[] chains = [.. tx.PopAll()];
        Assert.Equal(3, chains.Length);
        for (int i = 0; i < chains.Length; i++)
        {
            byte[] seen = chains[i].ReadReadable();
            Assert.Equal(new byte[12], seen[..12]);
            Assert.Equal(OffloadFrames.Udp(false, payload[(i * 1000)..((i + 1) * 1000)], ipId: (ushort)(0x1234 + i)), seen[12..]);
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void SegmentsThatWouldNotFitTheMtuAreRefusedWhetherTheDeviceOrTheDriverCuts(bool tcp, bool device)
    {
        // The device cuts a GSO packet into gso_size pieces behind the headers; a piece longer than the MTU allows
        // would leave the device as an oversized frame, so the driver refuses it as it does when it cuts in software.
        ulong segmentation = device ? HostGso | VirtioNetFeatures.HostUso : VirtioNetFeatures.Csum;
        var (net, _, tx) = Open(Modern | segmentation);
        using (net)
        {
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            byte[] payload = OffloadFrames.Payload(6000, 11);
            byte[] frame = tcp ? OffloadFrames.Tcp(false, 1, payload, zeroChecksum: true) : OffloadFrames.Udp(false, payload, zeroChecksum: true);
            int headers = tcp ? 54 : 42;
            int fits = net.Pairs[0].MaxTransmitFrameLength - headers;

            var e = Assert.Throws<ArgumentException>(() => queue.TrySend(frame, TransmitOffloadRequest.Segmentation(fits + 1)));
            Assert.Contains("MaxFrameLength", e.Message, StringComparison.Ordinal);
            Assert.Empty(tx.PopAll());

            Assert.True(queue.TrySend(frame, TransmitOffloadRequest.Segmentation(fits)));
            List<DeviceChain> chains = tx.PopAll();
            Assert.Equal(device ? 1 : (6000 + fits - 1) / fits, chains.Count);
        }
    }
}
