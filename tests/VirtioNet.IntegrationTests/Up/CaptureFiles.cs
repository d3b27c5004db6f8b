using System.Buffers.Binary;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>Reads the frames of a pcapng file (vnet capture's) and of a classic pcap file (QEMU's filter-dump's).</summary>
internal static class CaptureFiles
{
    /// <summary>One frame of a pcapng file: its interface, its epb_flags (1 inbound, 2 outbound in bits 0-1), epb_queue, and bytes.</summary>
    public sealed record Packet(int Interface, uint Flags, uint? Queue, byte[] Data);

    /// <summary>The frames of a pcapng file; with <paramref name="growing"/>, a last block still being written is left out.</summary>
    public static List<Packet> ReadPcapNg(string path, bool growing = false)
    {
        byte[] file = File.ReadAllBytes(path);
        var packets = new List<Packet>();
        Assert.True(file.Length >= 28 && BinaryPrimitives.ReadUInt32LittleEndian(file) == 0x0A0D0D0A, "no section header block");
        Assert.Equal(0x1A2B3C4Du, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(8)));
        int at = 0;
        while (at < file.Length)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at));
            int length = at + 8 <= file.Length ? (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 4)) : 0;
            if (growing && (length < 12 || at + length > file.Length))
            {
                break;
            }

            Assert.True(length >= 12 && length % 4 == 0 && at + length <= file.Length, $"bad block at {at}");
            Assert.Equal((uint)length, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + length - 4)));
            if (type == 6)
            {
                ReadOnlySpan<byte> block = file.AsSpan(at, length);
                int captured = (int)BinaryPrimitives.ReadUInt32LittleEndian(block[20..]);
                byte[] data = block.Slice(28, captured).ToArray();
                uint flags = 0;
                uint? queue = null;
                int option = 28 + ((captured + 3) & ~3);
                while (option + 4 <= length - 4)
                {
                    ushort code = BinaryPrimitives.ReadUInt16LittleEndian(block[option..]);
                    ushort size = BinaryPrimitives.ReadUInt16LittleEndian(block[(option + 2)..]);
                    if (code == 0)
                    {
                        break;
                    }

                    if (code == 2)
                    {
                        flags = BinaryPrimitives.ReadUInt32LittleEndian(block[(option + 4)..]);
                    }
                    else if (code == 6)
                    {
                        queue = BinaryPrimitives.ReadUInt32LittleEndian(block[(option + 4)..]);
                    }

                    option += 4 + ((size + 3) & ~3);
                }

                packets.Add(new Packet((int)BinaryPrimitives.ReadUInt32LittleEndian(block[8..]), flags, queue, data));
            }

            at += length;
        }

        return packets;
    }

    /// <summary>The frames of a classic (libpcap) file, little-endian, as QEMU's filter-dump writes it.</summary>
    public static List<byte[]> ReadPcap(string path)
    {
        byte[] file = File.ReadAllBytes(path);
        Assert.True(file.Length >= 24 && BinaryPrimitives.ReadUInt32LittleEndian(file) == 0xA1B2C3D4, "not a little-endian pcap file");
        var frames = new List<byte[]>();
        int at = 24;
        while (at + 16 <= file.Length)
        {
            int captured = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8));
            if (at + 16 + captured > file.Length)
            {
                break;
            }

            frames.Add(file.AsSpan(at + 16, captured).ToArray());
            at += 16 + captured;
        }

        return frames;
    }

    /// <summary>Whether <paramref name="frame"/> is an ICMP echo message (IPv4, type <paramref name="icmpType"/>: 8 request, 0 reply).</summary>
    public static bool IsIcmpEcho(byte[] frame, byte icmpType) =>
        frame.Length >= 42 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 1 && frame[14 + ((frame[14] & 0x0f) * 4)] == icmpType;
}
