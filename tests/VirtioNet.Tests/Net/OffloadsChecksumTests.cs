using System.Buffers.Binary;
using System.Net;
using PacketDotNet;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>The Internet checksum against published vectors and against PacketDotNet's independent implementation.</summary>
public sealed class OffloadsChecksumTests
{
    [Fact]
    public void TheRfc1071ExampleSumsToDdf2()
    {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2u, InternetChecksum.Add(data));
        Assert.Equal(0x220d, InternetChecksum.Compute(data));
    }

    [Fact]
    public void AKnownIPv4HeaderGetsItsPublishedChecksum()
    {
        byte[] header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xb861, InternetChecksum.Compute(header));
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(10), 0xb861);
        Assert.True(InternetChecksum.IsValid(header));
        header[15] ^= 0x01;
        Assert.False(InternetChecksum.IsValid(header));
    }

    [Fact]
    public void AnOddLengthIsPaddedWithAZeroByte()
    {
        byte[] odd = [0x12, 0x34, 0x56];
        Assert.Equal(InternetChecksum.Compute([0x12, 0x34, 0x56, 0x00]), InternetChecksum.Compute(odd));
    }

    [Fact]
    public void SumsChainAcrossEvenPieces()
    {
        byte[] data = new byte[1501];
        new Random(7).NextBytes(data);
        uint chained = InternetChecksum.Add(data.AsSpan(600), InternetChecksum.Add(data.AsSpan(0, 600)));
        Assert.Equal(InternetChecksum.Add(data), chained);
    }

    [Fact]
    public void ATcpSynSeenByTcpdumpGetsTheChecksumTcpdumpCalledCorrect()
    {
        // 114.246.207.139.62300 > 17.142.169.199.443: Flags [S], cksum 0x6261 (correct), seq 1938751972, win 65535,
        // options [mss 1452,nop,wscale 6,nop,nop,TS val 2178083437 ecr 0,sackOK,eol], length 0 (IP length 64).
        byte[] tcp = new byte[44];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 62300);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), 443);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), 1938751972);
        tcp[12] = 11 << 4;
        tcp[13] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 65535);
        byte[] options = [0x02, 0x04, 0x05, 0xac, 0x01, 0x03, 0x03, 0x06, 0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0x02, 0x00, 0x00];
        BinaryPrimitives.WriteUInt32BigEndian(options.AsSpan(12), 2178083437);
        options.CopyTo(tcp, 20);

        byte[] source = IPAddress.Parse("114.246.207.139").GetAddressBytes();
        byte[] destination = IPAddress.Parse("17.142.169.199").GetAddressBytes();
        Assert.Equal(0x6261, InternetChecksum.ComputeTransport(source, destination, InternetChecksum.ProtocolTcp, tcp));
    }

    [Theory]
    [InlineData("10.0.2.15", "10.0.2.2", 1)]
    [InlineData("192.168.1.200", "8.8.8.8", 2)]
    [InlineData("fe80::5054:ff:fe12:3456", "ff02::1", 3)]
    [InlineData("2001:db8::1", "2001:db8:ffff::2", 4)]
    public void UdpAndTcpChecksumsMatchPacketDotNet(string source, string destination, int seed)
    {
        var random = new Random(seed);
        IPAddress src = IPAddress.Parse(source);
        IPAddress dst = IPAddress.Parse(destination);
        for (int round = 0; round < 20; round++)
        {
            byte[] payload = new byte[random.Next(0, 1400)];
            random.NextBytes(payload);

            var udp = new UdpPacket((ushort)random.Next(1, 65535), (ushort)random.Next(1, 65535)) { PayloadData = payload };
            var tcp = new TcpPacket((ushort)random.Next(1, 65535), (ushort)random.Next(1, 65535))
            {
                PayloadData = payload,
                SequenceNumber = (uint)random.Next(),
                WindowSize = 1000,
                Synchronize = true,
            };
            Wrap(udp, src, dst);
            Wrap(tcp, src, dst);
            udp.UpdateUdpChecksum();
            tcp.UpdateTcpChecksum();

            byte[] udpBytes = udp.Bytes;
            ushort udpExpected = BinaryPrimitives.ReadUInt16BigEndian(udpBytes.AsSpan(6));
            udpBytes[6] = udpBytes[7] = 0;
            Assert.Equal(udpExpected, InternetChecksum.ComputeTransport(src.GetAddressBytes(), dst.GetAddressBytes(), InternetChecksum.ProtocolUdp, udpBytes));

            byte[] tcpBytes = tcp.Bytes;
            ushort tcpExpected = BinaryPrimitives.ReadUInt16BigEndian(tcpBytes.AsSpan(16));
            tcpBytes[16] = tcpBytes[17] = 0;
            Assert.Equal(tcpExpected, InternetChecksum.ComputeTransport(src.GetAddressBytes(), dst.GetAddressBytes(), InternetChecksum.ProtocolTcp, tcpBytes));
        }
    }

    [Fact]
    public void CompletingAPartialChecksumGivesTheFullOne()
    {
        // What a device does with NEEDS_CSUM: the field holds the pseudo-header sum, the rest is summed from csum_start.
        byte[] src = [10, 0, 2, 15];
        byte[] dst = [10, 0, 2, 2];
        byte[] packet = new byte[14 + 20 + 8 + 33];
        new Random(3).NextBytes(packet);
        Span<byte> udp = packet.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
        udp[6] = udp[7] = 0;
        ushort full = InternetChecksum.ComputeTransport(src, dst, InternetChecksum.ProtocolUdp, udp);

        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], InternetChecksum.PseudoHeaderChecksum(src, dst, InternetChecksum.ProtocolUdp, udp.Length));
        InternetChecksum.CompletePartial(packet, 34, 6);
        Assert.Equal(full, BinaryPrimitives.ReadUInt16BigEndian(udp[6..]));
        Assert.Throws<ArgumentOutOfRangeException>(() => InternetChecksum.CompletePartial(packet, 34, packet.Length - 34 - 1));
    }

    [Fact]
    public void MismatchedAddressLengthsAreRefused() =>
        Assert.Throws<ArgumentException>(() => InternetChecksum.PseudoHeaderSum(new byte[4], new byte[16], 6, 20));

    private static void Wrap(Packet transport, IPAddress source, IPAddress destination)
    {
        if (source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            _ = new IPv4Packet(source, destination) { PayloadPacket = transport };
        }
        else
        {
            _ = new IPv6Packet(source, destination) { PayloadPacket = transport };
        }
    }
}
