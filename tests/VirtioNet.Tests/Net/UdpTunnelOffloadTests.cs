using System.Buffers.Binary;
using PacketDotNet;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// UDP tunnel segmentation offload (VIRTIO_NET_F_HOST/GUEST_UDP_TUNNEL_GSO, _CSUM; virtio v1.4 §5.1.6) against the
/// software device, with VXLAN frames built by PacketDotNet: what the driver puts in the transmit ring with and without
/// the device's tunnel GSO, and what it makes of tunnel GSO frames from the device, lies included. No peer here offers
/// these bits (QEMU 10.1 would; the machines have 7.2 and Debian's 10.0 backport).
/// </summary>
public sealed class UdpTunnelOffloadTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.MrgRxBuf;
    private const ulong HostGso = VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6 | VirtioNetFeatures.HostUso;
    private const ulong GuestGso = VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.GuestTso6 | VirtioNetFeatures.GuestUso4 | VirtioNetFeatures.GuestUso6;
    private const int Vxlan = 8;
    private const int Mss = 1300;

    private static readonly ulong HostTunnel = VirtioNetFeatures.HostUdpTunnelGso.High;
    private static readonly ulong HostTunnelCsum = (VirtioNetFeatures.HostUdpTunnelGso | VirtioNetFeatures.HostUdpTunnelGsoCsum).High;
    private static readonly ulong GuestTunnelCsum = (VirtioNetFeatures.GuestUdpTunnelGso | VirtioNetFeatures.GuestUdpTunnelGsoCsum).High;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private (VirtioNetDevice Net, SoftwareSplitDevice Rx, SoftwareSplitDevice Tx) Open(ulong offered, ulong offeredHigh)
    {
        var transport = new SoftwareNetTransport(offered) { OfferedFeaturesHigh = offeredHigh };
        var net = VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        return (net, new SoftwareSplitDevice(_memory, net.ReceiveQueue, false), new SoftwareSplitDevice(_memory, net.TransmitQueue, false));
    }

    /// <summary>
    /// A VXLAN frame: outer Ethernet, IPv4 or IPv6, UDP to port 4789 with checksum zero, the 8-byte VXLAN header (VNI 42),
    /// then <paramref name="inner"/>.
    /// </summary>
    private static byte[] VxlanFrame(bool outerIPv6, byte[] inner, ushort outerId = 0x0500)
    {
        byte[] vxlan = [0x08, 0, 0, 0, 0, 0, 42, 0];
        var udp = new UdpPacket(50000, 4789) { PayloadData = [.. vxlan, .. inner] };
        IPPacket ip = outerIPv6
            ? new IPv6Packet(OffloadFrames.Source6, OffloadFrames.Destination6) { HopLimit = 64 }
            : new IPv4Packet(OffloadFrames.Source4, OffloadFrames.Destination4) { Id = outerId, TimeToLive = 64 };
        ip.Protocol = PacketDotNet.ProtocolType.Udp;
        ip.PayloadPacket = udp;
        var ethernet = new EthernetPacket(OffloadFrames.SourceMac, OffloadFrames.DestinationMac, outerIPv6 ? EthernetType.IPv6 : EthernetType.IPv4) { PayloadPacket = ip };
        ethernet.UpdateCalculatedValues();
        if (ip is IPv4Packet v4)
        {
            v4.UpdateIPChecksum();
        }

        udp.Checksum = 0;
        return ethernet.Bytes;
    }

    private static int OuterTh(bool outerIPv6) => 14 + (outerIPv6 ? 40 : 20);

    private static int InnerNh(bool outerIPv6) => OuterTh(outerIPv6) + 8 + Vxlan + 14;

    private static int InnerTh(bool outerIPv6, bool innerIPv6) => InnerNh(outerIPv6) + (innerIPv6 ? 40 : 20);

    private static (IPPacket OuterIp, UdpPacket OuterUdp, EthernetPacket Inner) Dissect(byte[] frame)
    {
        var outer = Packet.ParsePacket(LinkLayers.Ethernet, frame);
        UdpPacket udp = outer.Extract<UdpPacket>()!;

        // The inner frame from the bytes (PacketDotNet may take port 4789's payload for a packet of its own).
        byte[] innerBytes = frame[(frame.Length - udp.Length + 8 + Vxlan)..];
        return (outer.Extract<IPPacket>()!, udp, (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, innerBytes));
    }

    // A 24-byte header as a device writes it (num_buffers set by Deliver).
    private static byte[] TunnelHeader(byte flags, byte gsoType, int gsoSize, int csumStart, int csumOffset, int outerTh, int innerNh)
    {
        byte[] header = new byte[VirtioNetHeader.UdpTunnelLength];
        header[0] = flags;
        header[1] = gsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), (ushort)gsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), (ushort)csumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)csumOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(20), (ushort)outerTh);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(22), (ushort)innerNh);
        return header;
    }

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

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void WithHostUdpTunnelGsoAVxlanTcpSegmentIsOneTunnelGsoPacketWithItsOffsets(bool outerIPv6, bool innerIPv6)
    {
        var (net, _, tx) = Open(Modern | HostGso, HostTunnel);
        using (net)
        {
            Assert.Equal(VirtioNetHeader.UdpTunnelLength, net.HeaderLength);
            Assert.True(net.NegotiatedFeatures.ContainsAll(VirtioNetFeatures.HostUdpTunnelGso));
            byte[] payload = OffloadFrames.Payload(20000, 5);
            byte[] inner = OffloadFrames.Tcp(innerIPv6, 1000, payload);
            byte[] frame = VxlanFrame(outerIPv6, inner);
            VirtioNetTransmitQueue queue = net.Pairs[0].TransmitQueue;
            Assert.True(queue.TrySend(frame, TransmitOffloadRequest.UdpTunnelSegmentation(Mss, Vxlan)));

            Assert.True(tx.TryPop(out DeviceChain? chain));
            Assert.False(tx.TryPop(out _));
            byte[] seen = chain.ReadReadable();
            Assert.Equal(24 + frame.Length, seen.Length);

            // The spec's Geneve example (§5.1.6.2) puts outer_th_offset at the outer UDP header and inner_nh_offset at
            // the inner IP header; its sums (42, 62) miscount, the field definitions are what is followed here.
            int innerTh = InnerTh(outerIPv6, innerIPv6);
            Assert.Equal(VirtioNetHeader.FlagNeedsCsum, seen[0]);
            // gso_type: the inner TCP type with the tunnel bit of the outer IP version (as Linux sets and checks it).
            Assert.Equal((innerIPv6 ? 0x04 : 0x01) | (outerIPv6 ? 0x40 : 0x20), seen[1]);
            Assert.Equal(innerTh + 20, BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(2)));
            Assert.Equal(Mss, BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(4)));
            Assert.Equal(innerTh, BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(6)));
            Assert.Equal(16, BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(8)));
            Assert.Equal(OuterTh(outerIPv6), BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(20)));
            Assert.Equal(InnerNh(outerIPv6), BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(22)));

            // The outer UDP checksum stays zero (no _CSUM asked); completing the inner one gives PacketDotNet's frame.
            byte[] sent = seen[24..];
            Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(sent.AsSpan(OuterTh(outerIPv6) + 6)));
            InternetChecksum.CompletePartial(sent, innerTh, 16);
            Assert.Equal(frame, sent);
            tx.Complete(chain, 0);
            Assert.Equal(1, queue.Reclaim());
        }
    }

    [Fact]
    public void WithHostUdpTunnelGsoCsumTheOuterChecksumIsLeftToTheDevice()
    {
        var (net, _, tx) = Open(Modern | HostGso, HostTunnelCsum);
        using (net)
        {
            byte[] frame = VxlanFrame(false, OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(9000, 6)));
            Assert.True(net.Pairs[0].TransmitQueue.TrySend(frame, TransmitOffloadRequest.UdpTunnelSegmentation(Mss, Vxlan, outerUdpChecksum: true)));

            Assert.True(tx.TryPop(out DeviceChain? chain));
            byte[] seen = chain.ReadReadable();
            Assert.Equal(VirtioNetHeader.FlagNeedsCsum | VirtioNetHeader.FlagUdpTunnelCsum, seen[0]);
            Assert.Equal(0x21, seen[1]);

            // The device completes the inner checksum, then the outer one from its pseudo-header sum: both right.
            byte[] sent = seen[24..];
            InternetChecksum.CompletePartial(sent, InnerTh(false, false), 16);
            InternetChecksum.CompletePartial(sent, OuterTh(false), 6);
            var (_, outerUdp, innerEthernet) = Dissect(sent);
            Assert.True(outerUdp.ValidUdpChecksum);
            Assert.True(innerEthernet.Extract<TcpPacket>()!.ValidTcpChecksum);
        }
    }

    [Theory]
    [InlineData(true, false, false)]
    [InlineData(true, true, false)]
    [InlineData(false, false, false)]
    [InlineData(false, true, false)]
    [InlineData(true, true, true)]
    [InlineData(false, false, true)]
    public void WithoutTheDevicesTunnelGsoTheDriverCutsTheInnerTcpAndFixesTheOuterHeaders(bool csum, bool outerChecksum, bool tunnelGsoWithoutCsum)
    {
        // tunnelGsoWithoutCsum: HOST_UDP_TUNNEL_GSO offered but not _CSUM, so a request for the outer checksum leaves
        // the cutting to the driver; a device without CSUM loses the tunnel GSO with TSO (§5.1.3.1).
        ulong offered = Modern | (csum ? HostGso : 0);
        var (net, _, tx) = Open(offered, tunnelGsoWithoutCsum ? HostTunnel : 0);
        using (net)
        {
            Assert.Equal(csum && tunnelGsoWithoutCsum ? HostTunnel : 0, net.NegotiatedFeatures.High);

            int header = net.HeaderLength;
            byte[] payload = OffloadFrames.Payload(5000, 7);
            byte[] inner = OffloadFrames.Tcp(false, 7000, payload, ipId: 0x0100, psh: true);
            byte[] frame = VxlanFrame(false, inner, outerId: 0x0900);
            Assert.True(net.Pairs[0].TransmitQueue.TrySend(frame, TransmitOffloadRequest.UdpTunnelSegmentation(Mss, Vxlan, outerChecksum)));

            List<DeviceChain> chains = tx.PopAll();
            Assert.Equal(4, chains.Count);
            var joined = new List<byte>();
            for (int i = 0; i < chains.Count; i++)
            {
                byte[] seen = chains[i].ReadReadable();
                byte[] sent = seen[header..];
                if (csum)
                {
                    // One checksum per segment for the device: the outer UDP one when asked for, else the inner TCP one.
                    Assert.Equal(VirtioNetHeader.FlagNeedsCsum, seen[0]);
                    Assert.Equal(0, seen[1]);
                    int start = BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(6));
                    Assert.Equal(outerChecksum ? OuterTh(false) : InnerTh(false, false), start);
                    InternetChecksum.CompletePartial(sent, start, BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(8)));
                }
                else
                {
                    Assert.Equal(0, seen[0]);
                }

                var (outerIp, outerUdp, innerEthernet) = Dissect(sent);
                var outerV4 = (IPv4Packet)outerIp;
                Assert.True(outerV4.ValidIPChecksum);
                Assert.Equal(sent.Length - 14, outerV4.TotalLength);
                Assert.Equal(0x0900 + i, outerV4.Id);
                Assert.Equal(sent.Length - 34, outerUdp.Length);
                if (outerChecksum)
                {
                    Assert.True(outerUdp.ValidUdpChecksum);
                }
                else
                {
                    Assert.Equal(0, outerUdp.Checksum);
                }

                var innerV4 = innerEthernet.Extract<IPv4Packet>()!;
                TcpPacket tcp = innerEthernet.Extract<TcpPacket>()!;
                Assert.True(innerV4.ValidIPChecksum);
                Assert.Equal(0x0100 + i, innerV4.Id);
                Assert.True(tcp.ValidTcpChecksum);
                Assert.Equal(7000u + (uint)(i * Mss), tcp.SequenceNumber);
                Assert.Equal(i == chains.Count - 1, tcp.Push);
                joined.AddRange(tcp.PayloadData);
            }

            Assert.Equal(payload, joined.ToArray());
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AVxlanFrameAskingOnlyForChecksumsLeavesOneToTheDeviceAndComputesTheOther(bool outerChecksum)
    {
        var (net, _, tx) = Open(Modern | HostGso, 0);
        using (net)
        {
            byte[] frame = VxlanFrame(false, OffloadFrames.Tcp(false, 9, OffloadFrames.Payload(1000, 10), zeroChecksum: true));
            var request = new TransmitOffloadRequest(ComputeChecksum: true) { UdpTunnelHeaderLength = Vxlan, OuterUdpChecksum = outerChecksum };
            Assert.True(net.Pairs[0].TransmitQueue.TrySend(frame, request));

            Assert.True(tx.TryPop(out DeviceChain? chain));
            byte[] seen = chain.ReadReadable();
            Assert.Equal(VirtioNetHeader.FlagNeedsCsum, seen[0]);
            Assert.Equal(0, seen[1]);
            int start = BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(6));
            int offset = BinaryPrimitives.ReadUInt16LittleEndian(seen.AsSpan(8));
            Assert.Equal(outerChecksum ? (OuterTh(false), 6) : (InnerTh(false, false), 16), (start, offset));

            byte[] sent = seen[12..];
            InternetChecksum.CompletePartial(sent, start, offset);
            var (_, outerUdp, innerEthernet) = Dissect(sent);
            Assert.True(innerEthernet.Extract<TcpPacket>()!.ValidTcpChecksum);
            Assert.True(outerChecksum ? outerUdp.ValidUdpChecksum : outerUdp.Checksum == 0);
        }
    }

    [Fact]
    public void AFrameThatIsNotTheTunnelItClaimsIsRefused()
    {
        var (net, _, tx) = Open(Modern | HostGso, HostTunnel);
        using (net)
        {
            // A plain TCP frame, and a VXLAN frame described with the wrong tunnel header length.
            byte[] plain = OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(3000, 11));
            byte[] vxlan = VxlanFrame(false, OffloadFrames.Tcp(false, 1, OffloadFrames.Payload(3000, 11)));
            Assert.Throws<ArgumentException>(() => net.Pairs[0].TransmitQueue.TrySend(plain, TransmitOffloadRequest.UdpTunnelSegmentation(Mss, Vxlan)));
            Assert.Throws<ArgumentException>(() => net.Pairs[0].TransmitQueue.TrySend(vxlan, TransmitOffloadRequest.UdpTunnelSegmentation(Mss, Vxlan + 4)));
            Assert.False(tx.TryPop(out _));
        }
    }

    [Theory]
    [InlineData(false, false, 0x21)]
    [InlineData(true, true, 0x44)]   // the tunnel bit by the inner IP version, as the spec's text has it
    [InlineData(true, false, 0x24)]  // by the outer one, as Linux (and so QEMU 10.1 with tap) has it
    public void ATunnelGsoFrameFromTheDeviceIsDeliveredWithItsOffsetsAndCompletedChecksums(bool innerIPv6, bool outerCsum, byte type)
    {
        var (net, rx, _) = Open(Modern | GuestGso, GuestTunnelCsum);
        using (net)
        {
            Assert.Equal(VirtioNetHeader.UdpTunnelLength, net.HeaderLength);
            byte[] complete = VxlanFrame(false, OffloadFrames.Tcp(innerIPv6, 5, OffloadFrames.Payload(8000, 8)));
            int innerTh = InnerTh(false, innerIPv6);
            byte[] partial = PartialTunnelFrame(complete, outerCsum);
            byte flags = (byte)(VirtioNetHeader.FlagNeedsCsum | (outerCsum ? VirtioNetHeader.FlagUdpTunnelCsum : 0));
            Deliver(rx, TunnelHeader(flags, type, Mss, innerTh, 16, OuterTh(false), InnerNh(false)), partial);

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length, out ReceivedFrameInfo info));
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.True(info.IsUdpTunnel);
            Assert.Equal((VirtioNetGsoType)type, info.GsoType);
            Assert.Equal(Mss, info.GsoSize);
            Assert.Equal(ReceivedChecksumState.Completed, info.Checksum);
            Assert.Equal(OuterTh(false), info.OuterTransportOffset);
            Assert.Equal(InnerNh(false), info.InnerNetworkOffset);
            byte[] frame = received[..length];
            var (_, outerUdp, innerEthernet) = Dissect(frame);
            Assert.True(innerEthernet.Extract<TcpPacket>()!.ValidTcpChecksum);
            Assert.True(outerCsum ? outerUdp.ValidUdpChecksum : outerUdp.Checksum == 0);
        }
    }

    // The frame as a device hands over a tunnel GSO packet: inner TCP checksum the pseudo-header sum, and the outer UDP
    // checksum the pseudo-header sum too with UDP_TUNNEL_CSUM (zero otherwise).
    private static byte[] PartialTunnelFrame(byte[] complete, bool outerCsum)
    {
        byte[] partial = (byte[])complete.Clone();
        Assert.True(UdpTunnelLayout.TryParse(partial, Vxlan, out UdpTunnelLayout tunnel));
        var decision = new TransmitOffloadDecision
        {
            Flags = (byte)(VirtioNetHeader.FlagNeedsCsum | (outerCsum ? VirtioNetHeader.FlagUdpTunnelCsum : 0)),
            GsoType = VirtioNetGsoType.TcpV4 | VirtioNetGsoType.UdpTunnelIPv4,
        };
        TransmitOffload.ApplyUdpTunnel(partial, tunnel, decision, outerCsum);
        return partial;
    }

    public static TheoryData<string, byte, byte, int, int, int, int, int> Lies => new()
    {
        // why, flags, gso_type, gso_size, csum_start, outer_th_offset, inner_nh_offset, negotiated (0 none, 1 GUEST_UDP_TUNNEL_GSO, 2 and _CSUM)
        { "outer_th_offset past the UDP header, as the spec's example sums it", 1, 0x21, Mss, 84, 42, 64, 2 },
        { "inner_nh_offset 62, as the spec's example sums it", 1, 0x21, Mss, 84, 34, 62, 2 },
        { "inner_nh_offset beyond the frame", 1, 0x21, Mss, 84, 34, 60000, 2 },
        { "outer_th_offset at the IP header", 1, 0x21, Mss, 84, 14, 64, 2 },
        { "both tunnel bits", 1, 0x61, Mss, 84, 34, 64, 2 },
        { "IPv6 tunnel bit with IPv4 outside and inside", 1, 0x41, Mss, 84, 34, 64, 2 },
        { "inner TCPV6 on an inner IPv4 packet", 1, 0x24, Mss, 84, 34, 64, 2 },
        { "tunnel bits alone, no inner type", 1, 0x20, Mss, 84, 34, 64, 2 },
        { "tunnel bit with the deprecated GSO_UDP", 1, 0x23, Mss, 84, 34, 64, 2 },
        { "tunnel GSO without NEEDS_CSUM", 0, 0x21, Mss, 84, 34, 64, 2 },
        { "tunnel GSO with DATA_VALID beside NEEDS_CSUM", 3, 0x21, Mss, 84, 34, 64, 2 },
        { "csum_start at the outer UDP header", 1, 0x21, Mss, 34, 34, 64, 2 },
        { "gso_size 0", 1, 0x21, 0, 84, 34, 64, 2 },
        { "UDP_TUNNEL_CSUM without GUEST_UDP_TUNNEL_GSO_CSUM", 9, 0x21, Mss, 84, 34, 64, 1 },
        { "tunnel bits without GUEST_UDP_TUNNEL_GSO", 1, 0x21, Mss, 84, 34, 64, 0 },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void TunnelGsoHeadersThatContradictTheFrameOrTheFeaturesAreCountedDrops(string why, byte flags, byte gsoType, int gsoSize, int csumStart, int outerTh, int innerNh, int features)
    {
        bool negotiated = features > 0;
        var (net, rx, _) = Open(Modern | GuestGso, features switch { 0 => 0, 1 => VirtioNetFeatures.GuestUdpTunnelGso.High, _ => GuestTunnelCsum });
        using (net)
        {
            byte[] complete = VxlanFrame(false, OffloadFrames.Tcp(false, 5, OffloadFrames.Payload(8000, 9)));
            byte[] partial = PartialTunnelFrame(complete, outerCsum: false);
            byte[] header = TunnelHeader(flags, gsoType, gsoSize, csumStart, 16, outerTh, innerNh);
            Deliver(rx, negotiated ? header : header[..12], partial);

            // A plain frame behind it still arrives.
            byte[] plain = OffloadFrames.Udp(false, OffloadFrames.Payload(100, 1));
            Deliver(rx, new byte[net.HeaderLength], plain);

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length, out ReceivedFrameInfo info), why);
            Assert.Equal(plain, received[..length]);
            Assert.False(info.IsUdpTunnel);
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Packets);
            Assert.False(net.Pairs[0].TryReceive(received, out _, out ReceivedFrameInfo _));
        }
    }

    public static TheoryData<string, ulong, ulong, ulong> Dependencies => new()
    {
        { "GUEST_UDP_TUNNEL_GSO without GUEST_USO6", GuestGso & ~VirtioNetFeatures.GuestUso6, GuestTunnelCsum, 0 },
        { "GUEST_UDP_TUNNEL_GSO with all four", GuestGso, GuestTunnelCsum, GuestTunnelCsum },
        { "GUEST_UDP_TUNNEL_GSO_CSUM alone", GuestGso, VirtioNetFeatures.GuestUdpTunnelGsoCsum.High, 0 },
        { "HOST_UDP_TUNNEL_GSO without HOST_USO", HostGso & ~VirtioNetFeatures.HostUso, HostTunnelCsum, 0 },
        { "HOST_UDP_TUNNEL_GSO without CSUM (which takes TSO with it)", HostGso & ~VirtioNetFeatures.Csum, HostTunnelCsum, 0 },
        { "HOST_UDP_TUNNEL_GSO_CSUM alone", HostGso, VirtioNetFeatures.HostUdpTunnelGsoCsum.High, 0 },
        { "HOST_UDP_TUNNEL_GSO with both", HostGso, HostTunnelCsum, HostTunnelCsum },
        { "RSS_CONTEXT, OUT_NET_HEADER, IPSEC: not implemented", VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Rss, (VirtioNetFeatures.RssContext | VirtioNetFeatures.OutNetHeader | VirtioNetFeatures.Ipsec).High, 0 },
    };

    [Theory]
    [MemberData(nameof(Dependencies))]
    public void ATunnelFeatureOfferedWithoutWhatItRequiresIsNotAccepted(string why, ulong offered, ulong offeredHigh, ulong expectedHigh)
    {
        var transport = new SoftwareNetTransport(VirtioFeatures.Version1 | offered) { OfferedFeaturesHigh = offeredHigh };
        var options = new VirtioNetOptions();
        VirtioFeatureSet accepted = VirtioDeviceInitializer.Negotiate(transport, 1, options.SupportedFeatureSet, VirtioFeatureSet.None, VirtioNetOptions.WithoutUnmetDependencies);
        Assert.True(expectedHigh == accepted.High, why);
        Assert.Equal(accepted.High, transport.DriverFeaturesHigh);
        Assert.Equal(0UL, new VirtioNetOptions { Offloads = false }.SupportedFeatureSet.High);
        Assert.Equal(0UL, (new VirtioNetOptions { DisabledFeaturesHigh = HostTunnelCsum }.SupportedFeatureSet & VirtioNetFeatures.HostUdpTunnelGso).High);
    }

    [Fact]
    public void WithATunnelFeatureButNoHashReportTheHeaderIs24BytesAndNoHashIsRead()
    {
        var (net, rx, _) = Open(Modern | GuestGso, VirtioNetFeatures.GuestUdpTunnelGso.High);
        using (net)
        {
            Assert.Equal(24, net.HeaderLength);
            byte[] plain = OffloadFrames.Udp(false, OffloadFrames.Payload(100, 2));
            byte[] header = new byte[24];

            // Garbage where hash_value and hash_report would be: HASH_REPORT is not negotiated, so it is padding.
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), 0xdeadbeef);
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), 1);
            Deliver(rx, header, plain);

            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length, out VirtioNet.Net.MultiQueue.ReceiveHash hash));
            Assert.Equal(plain, received[..length]);
            Assert.False(hash.IsPresent);
        }
    }
}
