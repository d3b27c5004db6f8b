using System.Buffers.Binary;
using System.Text;

namespace VirtioNet.Service;

/// <summary>
/// Writes a pcapng file (IETF draft-ietf-opsawg-pcapng): one Section Header Block, one Interface Description Block per
/// queue pair (Ethernet, named "TAP qN"), and an Enhanced Packet Block per frame with the direction in epb_flags
/// (inbound: received from the device; outbound: queued to it) and the queue in epb_queue. Little-endian, microsecond
/// timestamps (the default if_tsresol). tcpdump, tshark and Wireshark read it.
/// </summary>
internal sealed class PcapNgWriter : IDisposable
{
    private const uint SectionHeaderBlock = 0x0A0D0D0A;
    private const uint InterfaceDescriptionBlock = 1;
    private const uint EnhancedPacketBlock = 6;
    private const uint ByteOrderMagic = 0x1A2B3C4D;
    private const ushort LinkTypeEthernet = 1;
    private const ushort OptionEnd = 0;
    private const ushort ShbUserApplication = 4;
    private const ushort IfName = 2;
    private const ushort EpbFlags = 2;
    private const ushort EpbQueue = 6;

    // epb_flags bits 0-1: the direction.
    private const uint FlagInbound = 1;
    private const uint FlagOutbound = 2;

    private readonly Stream _stream;
    private readonly MemoryStream _block = new();

    /// <summary>Writes the section header and one interface per queue pair to <paramref name="stream"/> (which it then owns).</summary>
    public PcapNgWriter(Stream stream, string interfaceName, int pairs)
    {
        _stream = stream;
        WriteBlock(SectionHeaderBlock, body =>
        {
            Put32(body, ByteOrderMagic);
            Put16(body, 1);
            Put16(body, 0);
            Put64(body, ulong.MaxValue); // section length not given
            PutOption(body, ShbUserApplication, Encoding.UTF8.GetBytes("vnet capture"));
            PutOption(body, OptionEnd, []);
        });
        for (int pair = 0; pair < pairs; pair++)
        {
            int queue = pair;
            WriteBlock(InterfaceDescriptionBlock, body =>
            {
                Put16(body, LinkTypeEthernet);
                Put16(body, 0);
                Put32(body, 0); // no snap length: whole frames
                PutOption(body, IfName, Encoding.UTF8.GetBytes($"{interfaceName} q{queue}"));
                PutOption(body, OptionEnd, []);
            });
        }
    }

    /// <summary>Frames written.</summary>
    public long Packets { get; private set; }

    /// <summary>One frame of queue pair <paramref name="queue"/> (its interface), seen at <paramref name="timestampMicroseconds"/> since the Unix epoch.</summary>
    public void Write(int queue, CaptureDirection direction, long timestampMicroseconds, ReadOnlySpan<byte> frame)
    {
        byte[] data = frame.ToArray();
        WriteBlock(EnhancedPacketBlock, body =>
        {
            Put32(body, (uint)queue);
            Put32(body, (uint)((ulong)timestampMicroseconds >> 32));
            Put32(body, (uint)timestampMicroseconds);
            Put32(body, (uint)data.Length);
            Put32(body, (uint)data.Length);
            body.Write(data);
            Pad(body, data.Length);
            Span<byte> value = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(value, direction == CaptureDirection.Received ? FlagInbound : FlagOutbound);
            PutOption(body, EpbFlags, value);
            BinaryPrimitives.WriteUInt32LittleEndian(value, (uint)queue);
            PutOption(body, EpbQueue, value);
            PutOption(body, OptionEnd, []);
        });
        Packets++;
    }

    /// <summary>Pushes what was written to the file.</summary>
    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Dispose();
        _block.Dispose();
    }

    // Type, total length, body, total length again.
    private delegate void BodyWriter(MemoryStream body);

    private void WriteBlock(uint type, BodyWriter writeBody)
    {
        _block.SetLength(0);
        writeBody(_block);
        uint total = (uint)(_block.Length + 12);
        Span<byte> word = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(word, type);
        BinaryPrimitives.WriteUInt32LittleEndian(word[4..], total);
        _stream.Write(word);
        _stream.Write(_block.GetBuffer().AsSpan(0, (int)_block.Length));
        _stream.Write(word[4..]);
    }

    private static void PutOption(MemoryStream body, ushort code, ReadOnlySpan<byte> value)
    {
        Put16(body, code);
        Put16(body, (ushort)value.Length);
        body.Write(value);
        Pad(body, value.Length);
    }

    private static void Pad(MemoryStream body, int length)
    {
        for (int i = length; i % 4 != 0; i++)
        {
            body.WriteByte(0);
        }
    }

    private static void Put16(MemoryStream body, ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        body.Write(bytes);
    }

    private static void Put32(MemoryStream body, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        body.Write(bytes);
    }

    private static void Put64(MemoryStream body, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        body.Write(bytes);
    }
}
