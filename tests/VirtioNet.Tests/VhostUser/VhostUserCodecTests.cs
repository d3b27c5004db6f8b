using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.Tests.VhostUser;

/// <summary>
/// Pure logic: the bytes of vhost-user requests and the checks on replies, against the layouts of vhost-user.rst
/// ("Message Specification"). No peer. (Here rather than in VirtioNet.Tests until that project references VirtioNet.VhostUser.)
/// </summary>
public sealed class VhostUserCodecTests
{
    private const string Peer = "vhost-user backend at /tmp/x.sock";

    [Fact]
    public void HeaderHoldsRequestVersionAndPayloadSize()
    {
        byte[] message = VhostUserCodec.EncodeU64(VhostUserRequest.SetFeatures, 0x1_2345_6789UL);

        Assert.Equal(20, message.Length);
        Assert.Equal(2u, U32(message, 0));
        Assert.Equal(0x1u, U32(message, 4));
        Assert.Equal(8u, U32(message, 8));
        Assert.Equal(0x1_2345_6789UL, BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(12)));
    }

    [Fact]
    public void NeedReplySetsBitThreeOfTheFlags()
    {
        byte[] message = VhostUserCodec.EncodeEmpty(VhostUserRequest.SetOwner, needReply: true);

        Assert.Equal(12, message.Length);
        Assert.Equal(3u, U32(message, 0));
        Assert.Equal(0x9u, U32(message, 4));
        Assert.Equal(0u, U32(message, 8));
    }

    [Fact]
    public void VringAddressPutsUsedBeforeAvailable()
    {
        byte[] message = VhostUserCodec.EncodeVringAddress(3, descriptor: 0x1000, used: 0x3000, available: 0x2000, log: 0x3000);

        Assert.Equal(12 + 40, message.Length);
        Assert.Equal(9u, U32(message, 0));
        Assert.Equal(40u, U32(message, 8));
        Assert.Equal(3u, U32(message, 12));
        Assert.Equal(0u, U32(message, 16));
        Assert.Equal(0x1000UL, U64(message, 20));
        Assert.Equal(0x3000UL, U64(message, 28));
        Assert.Equal(0x2000UL, U64(message, 36));
        Assert.Equal(0x3000UL, U64(message, 44));
    }

    [Fact]
    public void MemoryTableIsSizedToTheRegionsPresent()
    {
        byte[] message = VhostUserCodec.EncodeMemoryTable([new VhostUserMemoryRegion(0x7f00_0000_0000, 0x200000, 0x7f00_0000_0000, 0)], needReply: true);

        Assert.Equal(12 + 8 + 32, message.Length);
        Assert.Equal(5u, U32(message, 0));
        Assert.Equal(0x9u, U32(message, 4));
        Assert.Equal(40u, U32(message, 8));
        Assert.Equal(1u, U32(message, 12));
        Assert.Equal(0x7f00_0000_0000UL, U64(message, 20));
        Assert.Equal(0x200000UL, U64(message, 28));
        Assert.Equal(0x7f00_0000_0000UL, U64(message, 36));
        Assert.Equal(0UL, U64(message, 44));
    }

    [Fact]
    public void MemoryTableRefusesNoRegionsAndMoreThanEight()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VhostUserCodec.EncodeMemoryTable([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => VhostUserCodec.EncodeMemoryTable(new VhostUserMemoryRegion[9]));
    }

    [Fact]
    public void VringStateAndConfigRequestsHaveTheirFixedLayouts()
    {
        byte[] state = VhostUserCodec.EncodeVringState(VhostUserRequest.SetVringBase, 1, 0x8000);
        Assert.Equal(10u, U32(state, 0));
        Assert.Equal(8u, U32(state, 8));
        Assert.Equal(1u, U32(state, 12));
        Assert.Equal(0x8000u, U32(state, 16));

        byte[] config = VhostUserCodec.EncodeConfigRequest(0, 24);
        Assert.Equal(24u, U32(config, 0));
        Assert.Equal(36u, U32(config, 8));
        Assert.Equal(0u, U32(config, 12));
        Assert.Equal(24u, U32(config, 16));
        Assert.Equal(12 + 36, config.Length);
    }

    [Fact]
    public void AWellFormedReplyPassesValidation()
    {
        VhostUserHeader reply = VhostUserCodec.DecodeHeader(Header(1, 0x5, 8));

        VhostUserCodec.ValidateReply(reply, VhostUserRequest.GetFeatures, 8, Peer);
        Assert.Equal(VhostUserRequest.GetFeatures, reply.Request);
        Assert.Equal(8u, reply.Size);
    }

    [Theory]
    [InlineData(2u, 0x5u, 8u, "with a reply to request 2 (SET_FEATURES)")]
    [InlineData(1u, 0x6u, 8u, "protocol version 2")]
    [InlineData(1u, 0x4u, 8u, "protocol version 0")]
    [InlineData(1u, 0x1u, 8u, "without the reply flag")]
    [InlineData(1u, 0x5u, 4u, "payload of 4 bytes; expected 8")]
    [InlineData(1u, 0x5u, 0u, "payload of 0 bytes; expected 8")]
    public void AMalformedReplyIsRefusedWithAMessageSayingWhat(uint request, uint flags, uint size, string expected)
    {
        VhostUserHeader reply = VhostUserCodec.DecodeHeader(Header(request, flags, size));

        var error = Assert.Throws<VirtioException>(() => VhostUserCodec.ValidateReply(reply, VhostUserRequest.GetFeatures, 8, Peer));

        Assert.Equal(VirtioErrorReason.PlatformFailure, error.Reason);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.StartsWith(Peer + " answered GET_FEATURES", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnyReasonableSizeIsAcceptedWhenNoneIsExpectedButNotAHugeOne()
    {
        VhostUserCodec.ValidateReply(VhostUserCodec.DecodeHeader(Header(24, 0x5, 0)), VhostUserRequest.GetConfig, -1, Peer);
        VhostUserCodec.ValidateReply(VhostUserCodec.DecodeHeader(Header(24, 0x5, 36)), VhostUserRequest.GetConfig, -1, Peer);
        Assert.Throws<VirtioException>(() => VhostUserCodec.ValidateReply(VhostUserCodec.DecodeHeader(Header(24, 0x5, 1u << 20)), VhostUserRequest.GetConfig, -1, Peer));
    }

    [Fact]
    public void ConfigReplyMustEchoTheOffsetAndSizeAsked()
    {
        byte[] payload = new byte[12 + 24];
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(4), 24);
        payload[12] = 0x52;

        Assert.Equal(0x52, VhostUserCodec.DecodeConfig(payload, 0, 24, Peer)[0]);

        BinaryPrimitives.WriteUInt32LittleEndian(payload, 4);
        var error = Assert.Throws<VirtioException>(() => VhostUserCodec.DecodeConfig(payload, 0, 24, Peer));
        Assert.Contains("with offset 4 size 24", error.Message, StringComparison.Ordinal);
        Assert.Throws<VirtioException>(() => VhostUserCodec.DecodeConfig(payload.AsSpan(0, 20), 0, 24, Peer));
    }

    private static byte[] Header(uint request, uint flags, uint size)
    {
        byte[] header = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(header, request);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), size);
        return header;
    }

    private static uint U32(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset));

    private static ulong U64(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offset));
}
