using System.Buffers.Binary;
using System.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Net.Offloads;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// Burst offloads against DPDK 22.11's vhost-user backend (net_vhost, default devargs): it offers CSUM, GUEST_CSUM,
/// GUEST_TSO4/6, GUEST_ECN, GUEST_UFO, HOST_ECN and HOST_UFO, but not HOST_TSO4/6 (the PMD's <c>tso</c> devarg is 0 by
/// default), and the transport passes every offload bit it offers through. testpmd's <c>csum</c> engine, told to leave
/// TCP/UDP checksums to hardware and to segment TCP at 1000 bytes, hands each frame back with its own virtio_net_hdr:
/// NEEDS_CSUM with csum_start/csum_offset, and GSO_TCPV4 for a TCP payload above 1000 bytes. The driver's frames go out
/// through TransmitBurst with a checksum request (NEEDS_CSUM: only the pseudo-header sum in the frame, which DPDK's vhost
/// completes in software on dequeue), and come back through ReceiveBurst with the metadata.
/// </summary>
[Trait("Peer", "Dpdk")]
public sealed class VhostUserBurstOffloadTests
{
    // testpmd commands run before forwarding starts (--cmdline-file): checksums by "hardware" (the vhost port, which
    // writes them into the virtio_net_hdr), TSO at 1000 bytes.
    private const string CsumCommands = "port stop all\ncsum set ip sw 0\ncsum set tcp hw 0\ncsum set udp hw 0\ntso set 1000 0\nport start all\n";

    [Fact]
    public void ChecksumRequestsGoOutThroughTransmitBurstAndPartialChecksumsAndGsoComeBackThroughReceiveBurst()
    {
        string commands = Path.Combine(Directory.CreateTempSubdirectory("vnet-burstoff-").FullName, "csum.cmds");
        File.WriteAllText(commands, CsumCommands);
        try
        {
            using DpdkTestpmd testpmd = DpdkTestpmd.Start("csum", false, $"--cmdline-file={commands}");
            using VhostUserNetDevice session = VhostUserNetDevice.Open(
                new VhostUserOptions { SocketPath = testpmd.SocketPath },
                new VirtioNetOptions { OperationMode = OperationMode.Poll, Offloads = true },
                cancellationToken: TestContext.Current.CancellationToken);
            VirtioNetDevice net = session.Device;
            const ulong expected = VirtioNetFeatures.Csum | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.MrgRxBuf;
            Assert.Equal(expected, net.NegotiatedFeatures & expected);
            Assert.Equal(0UL, session.Transport.BackendFeatures & (VirtioNetFeatures.HostTso4 | VirtioNetFeatures.HostTso6));

            byte[][] frames = [Frame(tcp: false, 600), Frame(tcp: true, 600), Frame(tcp: true, 1400)];
            foreach (ReceiveBurstOptions options in new[] { ReceiveBurstOptions.None, ReceiveBurstOptions.CompletePartialChecksums })
            {
                Send(net.Pairs[0].TransmitQueue, frames);
                ReceivedPacket[] packets = new ReceivedPacket[64];
                int count = Receive(net.Pairs[0].ReceiveQueue, packets, frames.Length, options);
                Assert.Equal(frames.Length, count);
                for (int i = 0; i < count; i++)
                {
                    ReceivedFrameInfo info = packets[i].Offload;
                    byte[] frame = packets[i].Span.ToArray();
                    TestContext.Current.TestOutputHelper?.WriteLine($"{options}: {frame.Length} bytes, flags {packets[i].HeaderFlags}, {info}");
                    bool tcp = frames[i][23] == 6;
                    if (options == ReceiveBurstOptions.None)
                    {
                        Assert.Equal(ReceivedChecksumState.Partial, info.Checksum);
                        Assert.Equal(34, info.ChecksumStart);
                        Assert.Equal(tcp ? 16 : 6, info.ChecksumOffset);
                        InternetChecksum.CompletePartial(frame, info.ChecksumStart, info.ChecksumOffset);
                    }
                    else
                    {
                        Assert.Equal(ReceivedChecksumState.Completed, info.Checksum);
                    }

                    // The bytes from the IP header on are what was sent, checksum included (the csum engine rewrites MACs).
                    // Except for a GSO frame: DPDK's TSO convention leaves the TCP length out of the pseudo-header sum
                    // (rte_ipv4_phdr_cksum with TCP_SEG), and its vhost hands that sum on, where Linux and QEMU put the
                    // whole length in; completed over the whole frame, that sum gives a checksum without the length.
                    bool gso = tcp && frames[i].Length - 54 > 1000;
                    Assert.Equal(gso ? VirtioNetGsoType.TcpV4 : VirtioNetGsoType.None, info.GsoType);
                    Assert.Equal(gso ? 1000 : 0, info.GsoSize);
                    Assert.Equal(Complete(frames[i], withoutLength: gso)[14..], frame[14..]);
                }

                net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, count));
            }

            // Segmentation is not negotiated (no HOST_TSO4): the burst refuses that packet and says why.
            var one = new TransmitPacket[1];
            Assert.Equal(1, net.Pairs[0].TransmitQueue.AllocateBurst(one));
            frames[2].CopyTo(one[0].Span);
            one[0] = one[0].WithLength(frames[2].Length).WithOffload(TransmitOffloadRequest.Segmentation(500));
            Assert.Equal(0, net.Pairs[0].TransmitQueue.TransmitBurst(one, out TransmitBurstStatus status));
            Assert.Equal(TransmitBurstStatus.OffloadUnavailable, status);
            net.Pairs[0].TransmitQueue.FreeBurst(one);
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(commands)!, recursive: true);
        }
    }

    /// <summary>
    /// With <c>tso=1</c> the PMD offers HOST_TSO4/6 too: a 20 KB TCP segment leaves through a large burst buffer with a
    /// segmentation request (GSO_TCPV4, gso_size 1448), DPDK's vhost takes it whole into a chain of mbufs, and the csum
    /// engine hands it back whole with its own TSO size: a GSO frame far above the MTU, over many mergeable buffers,
    /// whose partial checksum the driver completes across them.
    /// </summary>
    [Fact]
    public void ALargeSegmentFromTransmitBurstComesBackFromDpdkAsAGsoFrameAcrossManyBuffers()
    {
        string commands = Path.Combine(Directory.CreateTempSubdirectory("vnet-burstoff-").FullName, "csum.cmds");
        File.WriteAllText(commands, CsumCommands);
        try
        {
            using DpdkTestpmd testpmd = DpdkTestpmd.StartWithVdevOptions("csum", "tso=1", $"--cmdline-file={commands}");
            using VhostUserNetDevice session = VhostUserNetDevice.Open(
                new VhostUserOptions { SocketPath = testpmd.SocketPath },
                new VirtioNetOptions { OperationMode = OperationMode.Poll, Offloads = true },
                cancellationToken: TestContext.Current.CancellationToken);
            VirtioNetDevice net = session.Device;
            const ulong expected = VirtioNetFeatures.Csum | VirtioNetFeatures.HostTso4 | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.MrgRxBuf;
            Assert.Equal(expected, net.NegotiatedFeatures & expected);

            byte[] frame = Frame(tcp: true, 20000);
            var one = new TransmitPacket[1];
            Assert.Equal(1, net.Pairs[0].TransmitQueue.AllocateLargeBurst(one));
            frame.CopyTo(one[0].Span);
            one[0] = one[0].WithLength(frame.Length).WithOffload(TransmitOffloadRequest.Segmentation(1448));
            Assert.Equal(1, net.Pairs[0].TransmitQueue.TransmitBurst(one, out TransmitBurstStatus status));
            Assert.Equal(TransmitBurstStatus.Complete, status);

            ReceivedPacket[] packets = new ReceivedPacket[64];
            var clock = Stopwatch.StartNew();
            int count = 0;
            while (count == 0 && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                count = net.Pairs[0].ReceiveQueue.ReceiveBurst(packets, ReceiveBurstOptions.CompletePartialChecksums);
            }

            Assert.True(count > 1, $"{count} buffers came back");
            Assert.Equal(count, packets[0].SegmentCount);
            ReceivedFrameInfo info = packets[0].Offload;
            TestContext.Current.TestOutputHelper?.WriteLine($"{count} buffers, {info}; transmitted {net.Pairs[0].TransmitStatistics.Packets} packet(s)");
            Assert.Equal(new ReceivedFrameInfo(ReceivedChecksumState.Completed, VirtioNetGsoType.TcpV4, 1000), info);
            byte[] received = [.. packets.AsSpan(0, count).ToArray().SelectMany(p => p.Span.ToArray())];
            Assert.Equal(Complete(frame, withoutLength: true)[14..], received[14..]);
            net.Pairs[0].ReceiveQueue.ReleaseBurst(packets.AsSpan(0, count));
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Errors);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(commands)!, recursive: true);
        }
    }

    private static void Send(VirtioNetTransmitQueue tx, byte[][] frames)
    {
        var packets = new TransmitPacket[frames.Length];
        Assert.Equal(frames.Length, tx.AllocateBurst(packets));
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i].CopyTo(packets[i].Span);
            packets[i] = packets[i].WithLength(frames[i].Length).WithOffload(TransmitOffloadRequest.Checksum);
        }

        Assert.Equal(frames.Length, tx.TransmitBurst(packets, out TransmitBurstStatus status));
        Assert.Equal(TransmitBurstStatus.Complete, status);
    }

    private static int Receive(VirtioNetReceiveQueue rx, ReceivedPacket[] packets, int expected, ReceiveBurstOptions options)
    {
        var clock = Stopwatch.StartNew();
        int count = 0;
        while (count < expected && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            count += rx.ReceiveBurst(packets.AsSpan(count), options);
        }

        return count;
    }

    // A TCP or UDP/IPv4 frame with its IPv4 checksum and a zero transport checksum, for the driver to ask to be filled.
    private static byte[] Frame(bool tcp, int payload)
    {
        int transportHeader = tcp ? 20 : 8;
        byte[] frame = new byte[14 + 20 + transportHeader + payload];
        new byte[] { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00 }.CopyTo(frame, 0);
        frame[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), (ushort)(20 + transportHeader + payload));
        frame[20] = 0x40;   // don't fragment
        frame[22] = 64;
        frame[23] = (byte)(tcp ? 6 : 17);
        new byte[] { 10, 88, 0, 1, 10, 88, 0, 2 }.CopyTo(frame, 26);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(24), InternetChecksum.Compute(frame.AsSpan(14, 20)));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(34), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(36), 5001);
        if (tcp)
        {
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(38), 1000);
            frame[46] = 0x50;
            frame[47] = 0x18;
            frame[48] = 0xFF;
            frame[49] = 0xFF;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(38), (ushort)(8 + payload));
        }

        new Random(payload + (tcp ? 1 : 0)).NextBytes(frame.AsSpan(14 + 20 + transportHeader));
        return frame;
    }

    // The frame with its transport checksum filled; withoutLength: with a pseudo-header that leaves the length out, as
    // DPDK's TSO mbufs have it.
    private static byte[] Complete(byte[] frame, bool withoutLength = false)
    {
        byte[] complete = (byte[])frame.Clone();
        Assert.True(PacketLayout.TryParse(complete, out PacketLayout layout));
        uint pseudo = InternetChecksum.PseudoHeaderSum(layout.SourceAddress(complete), layout.DestinationAddress(complete), layout.Protocol, withoutLength ? 0 : layout.TransportLength);
        ushort checksum = (ushort)~InternetChecksum.Add(complete.AsSpan(layout.TransportOffset, layout.TransportLength), pseudo);
        BinaryPrimitives.WriteUInt16BigEndian(complete.AsSpan(layout.TransportOffset + layout.ChecksumFieldOffset), checksum);
        return complete;
    }
}
