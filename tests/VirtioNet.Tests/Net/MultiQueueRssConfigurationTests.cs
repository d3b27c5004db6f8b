using System.Buffers.Binary;
using System.Net;
using VirtioNet.Net;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>RSS configuration validation against a device's limits, and the command payload encodings.</summary>
public sealed class MultiQueueRssConfigurationTests
{
    // QEMU 7.2's limits: 40-byte key, 128-entry table, every non-EX hash type.
    private static readonly VirtioNetConfig Qemu = new()
    {
        MaxVirtqueuePairs = 4,
        RssMaxKeySize = 40,
        RssMaxIndirectionTableLength = 128,
        SupportedHashTypes = 0x3f,
    };

    [Theory]
    [InlineData(3)]
    [InlineData(96)]
    [InlineData(0)]
    public void ATableWhoseLengthIsNotAPowerOfTwoIsRefusedSayingSo(int length)
    {
        var configuration = new RssConfiguration { IndirectionTable = new ushort[length] };
        ArgumentException e = Assert.Throws<ArgumentException>(() => configuration.Validate(Qemu, 4));
        Assert.Contains($"has {length} entries", e.Message, StringComparison.Ordinal);
        Assert.Contains("power of two", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATableLongerThanTheDeviceTakesIsRefusedWithTheLimit()
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => RssConfiguration.Spread(4, 256).Validate(Qemu, 4));
        Assert.Contains("at most 128", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEntryNamingAQueueBeyondThePairsIsRefusedWithItsPosition()
    {
        ushort[] table = new ushort[8];
        table[5] = 4;
        ArgumentException e = Assert.Throws<ArgumentException>(() => new RssConfiguration { IndirectionTable = table }.Validate(Qemu, 4));
        Assert.Contains("entry 5 names receive queue 4", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new RssConfiguration { UnclassifiedQueue = 4 }.Validate(Qemu, 4));
    }

    [Fact]
    public void HashTypesTheDeviceDoesNotSupportAndOversizedKeysAreRefused()
    {
        ArgumentException types = Assert.Throws<ArgumentException>(() => new RssConfiguration { HashTypes = RssHashTypes.TcpEx | RssHashTypes.Ipv4 }.Validate(Qemu, 4));
        Assert.Contains("TcpEx", types.Message, StringComparison.Ordinal);
        Assert.StartsWith("The device does not support the hash types TcpEx (", types.Message, StringComparison.Ordinal);
        ArgumentException key = Assert.Throws<ArgumentException>(() => new RssConfiguration { Key = new byte[41] }.Validate(Qemu, 4));
        Assert.Contains("41 bytes", key.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new RssConfiguration { Key = ReadOnlyMemory<byte>.Empty }.Validate(Qemu, 4));
        new RssConfiguration { Key = ReadOnlyMemory<byte>.Empty, HashTypes = RssHashTypes.None }.Validate(Qemu, 4);
    }

    [Fact]
    public void ASpreadTableSendsHashesRoundRobinAndIsValidForTheDevice()
    {
        RssConfiguration configuration = RssConfiguration.Spread(3, 128);
        configuration.Validate(Qemu, 3);
        Assert.Equal([0, 1, 2, 0, 1, 2], configuration.IndirectionTable.Span[..6].ToArray().Select(e => (int)e));

        // The queue is table[hash & 127]: hash 0x105 → entry 5 → queue 2.
        Assert.Equal(2, configuration.QueueFor(0x105));
        Assert.Equal(ToeplitzHash.DefaultKey.ToArray(), configuration.Key.ToArray());
    }

    [Fact]
    public void TheQueueForAFlowFollowsItsToeplitzHash()
    {
        // The first TCPv4 vector of Microsoft's RSS verification suite: 66.9.149.187:2794 → 161.142.100.80:1766 = 0x51ccc178.
        uint hash = ToeplitzHash.ComputeAddressesAndPorts(ToeplitzHash.DefaultKey, IPAddress.Parse("66.9.149.187"), IPAddress.Parse("161.142.100.80"), 2794, 1766);
        Assert.Equal(0x51ccc178u, hash);
        Assert.Equal((int)((0x51ccc178u & 127) % 4), RssConfiguration.Spread(4, 128).QueueFor(hash));
    }

    [Fact]
    public void TheRssConfigPayloadIsLaidOutAsTheSpecSays()
    {
        var configuration = new RssConfiguration
        {
            HashTypes = RssHashTypes.TcpIpv4 | RssHashTypes.UdpIpv4,
            IndirectionTable = new ushort[] { 1, 0, 3, 2 },
            UnclassifiedQueue = 2,
            Key = new byte[] { 0xAA, 0xBB, 0xCC, 0xDD, 0xEE },
        };
        byte[] payload = new byte[MultiQueuePayloads.RssConfigLength(configuration)];
        Assert.Equal(4 + 2 + 2 + 8 + 2 + 1 + 5, MultiQueuePayloads.WriteRssConfig(payload, configuration, maxTransmitQueues: 4));
        Assert.Equal(
            new byte[]
            {
                0x06, 0, 0, 0,      // hash_types: TCPv4 | UDPv4
                3, 0,               // indirection_table_mask
                2, 0,               // unclassified_queue
                1, 0, 0, 0, 3, 0, 2, 0, // indirection_table
                4, 0,               // max_tx_vq
                5,                  // hash_key_length
                0xAA, 0xBB, 0xCC, 0xDD, 0xEE,
            },
            payload);
    }

    [Fact]
    public void TheHashConfigVqPairsAndCoalescingPayloadsAreLaidOutAsTheSpecSays()
    {
        byte[] hash = new byte[MultiQueuePayloads.HashConfigLength(3)];
        MultiQueuePayloads.WriteHashConfig(hash, RssHashTypes.Ipv6 | RssHashTypes.Ipv4, [1, 2, 3]);
        Assert.Equal(new byte[] { 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3 }, hash);

        byte[] pairs = new byte[2];
        MultiQueuePayloads.WriteVqPairsSet(pairs, 0x1234);
        Assert.Equal(new byte[] { 0x34, 0x12 }, pairs);
        Assert.Throws<ArgumentOutOfRangeException>(() => MultiQueuePayloads.WriteVqPairsSet(pairs, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => MultiQueuePayloads.WriteVqPairsSet(pairs, 0x8001));

        byte[] coal = new byte[NotificationCoalescing.Length];
        MultiQueuePayloads.WriteCoalescing(coal, new NotificationCoalescing(32, 0x01020304));
        Assert.Equal(new byte[] { 32, 0, 0, 0, 4, 3, 2, 1 }, coal);

        byte[] vq = new byte[MultiQueuePayloads.VqCoalescingLength];
        MultiQueuePayloads.WriteVqCoalescing(vq, 5, new NotificationCoalescing(8, 50));
        Assert.Equal(new byte[] { 5, 0, 0, 0, 8, 0, 0, 0, 50, 0, 0, 0 }, vq);
    }

    [Fact]
    public void AReportedHashIsReadFromTheTwentyByteHeaderOnly()
    {
        byte[] header = new byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), 0xDEADBEEF);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), 3);
        Assert.Equal(new ReceiveHash(0xDEADBEEF, HashReportType.UdpIpv4), ReceiveHash.Read(header));
        Assert.False(ReceiveHash.Read(header.AsSpan(0, 12)).IsPresent);
    }
}
