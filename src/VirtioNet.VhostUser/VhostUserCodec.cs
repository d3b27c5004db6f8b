using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

/// <summary>
/// Encodes requests and decodes and validates replies of the vhost-user protocol. Pure functions over byte spans, so
/// every rule is unit-tested without a backend. Numbers are in the machine's native byte order (vhost-user.rst,
/// "Message Specification"). Used on the control path only: allocations here are fine.
/// </summary>
internal static class VhostUserCodec
{
    /// <summary>The most regions one SET_MEM_TABLE carries (VHOST_MEMORY_BASELINE_NREGIONS).</summary>
    public const int MaxMemoryRegions = 8;

    /// <summary>The largest configuration space GET_CONFIG may ask for (VHOST_USER_MAX_CONFIG_SIZE).</summary>
    public const int MaxConfigSize = 256;

    /// <summary>The largest reply payload accepted; anything larger is a broken peer (the biggest payload defined is about 300 bytes).</summary>
    public const int MaxReplyPayload = 4096;

    /// <summary>Bits 0-7 of a KICK/CALL u64: the vring index.</summary>
    public const ulong VringIndexMask = 0xff;

    /// <summary>Bit 8 of a KICK/CALL u64: no descriptor is attached (polling).</summary>
    public const ulong VringNoFdFlag = 0x100;

    /// <summary>Length of a vring state payload (index, num).</summary>
    public const int VringStateLength = 8;

    /// <summary>Length of a vring address payload (index, flags, desc, used, avail, log).</summary>
    public const int VringAddressLength = 40;

    /// <summary>Length of the config space payload's fixed part (offset, size, flags).</summary>
    public const int ConfigHeaderLength = 12;

    /// <summary>A message with a payload of one u64.</summary>
    public static byte[] EncodeU64(VhostUserRequest request, ulong value, bool needReply = false)
    {
        byte[] message = Allocate(request, sizeof(ulong), needReply);
        Write(message, VhostUserHeader.Length, value);
        return message;
    }

    /// <summary>A message without payload.</summary>
    public static byte[] EncodeEmpty(VhostUserRequest request, bool needReply = false) => Allocate(request, 0, needReply);

    /// <summary>A message with a vring state payload.</summary>
    public static byte[] EncodeVringState(VhostUserRequest request, uint index, uint num, bool needReply = false)
    {
        byte[] message = Allocate(request, VringStateLength, needReply);
        Write(message, VhostUserHeader.Length, index);
        Write(message, VhostUserHeader.Length + 4, num);
        return message;
    }

    /// <summary>SET_VRING_ADDR: the three ring addresses in the frontend's user addresses; <paramref name="log"/> is the used ring's guest address.</summary>
    public static byte[] EncodeVringAddress(uint index, ulong descriptor, ulong used, ulong available, ulong log, bool needReply = false)
    {
        byte[] message = Allocate(VhostUserRequest.SetVringAddr, VringAddressLength, needReply);
        int p = VhostUserHeader.Length;
        Write(message, p, index);
        Write(message, p + 4, 0u); // flags: no VHOST_VRING_F_LOG, this frontend never migrates
        Write(message, p + 8, descriptor);
        Write(message, p + 16, used);
        Write(message, p + 24, available);
        Write(message, p + 32, log);
        return message;
    }

    /// <summary>SET_MEM_TABLE: region count, padding, then the regions; one descriptor per region travels beside it.</summary>
    public static byte[] EncodeMemoryTable(ReadOnlySpan<VhostUserMemoryRegion> regions, bool needReply = false)
    {
        if (regions.IsEmpty || regions.Length > MaxMemoryRegions)
        {
            throw new ArgumentOutOfRangeException(nameof(regions), $"SET_MEM_TABLE carries 1 to {MaxMemoryRegions} regions, not {regions.Length}.");
        }

        // Sized to the regions present, as QEMU sends it: count and padding, then the entries.
        byte[] message = Allocate(VhostUserRequest.SetMemTable, 8 + (regions.Length * VhostUserMemoryRegion.Length), needReply);
        int p = VhostUserHeader.Length;
        Write(message, p, (uint)regions.Length);
        Write(message, p + 4, 0u);
        p += 8;
        foreach (VhostUserMemoryRegion region in regions)
        {
            Write(message, p, region.GuestAddress);
            Write(message, p + 8, region.Size);
            Write(message, p + 16, region.UserAddress);
            Write(message, p + 24, region.MmapOffset);
            p += VhostUserMemoryRegion.Length;
        }

        return message;
    }

    /// <summary>GET_CONFIG: offset, size, flags 0, and <paramref name="size"/> zero bytes the backend fills in.</summary>
    public static byte[] EncodeConfigRequest(uint offset, uint size)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, (uint)MaxConfigSize);
        byte[] message = Allocate(VhostUserRequest.GetConfig, ConfigHeaderLength + (int)size, needReply: false);
        Write(message, VhostUserHeader.Length, offset);
        Write(message, VhostUserHeader.Length + 4, size);
        Write(message, VhostUserHeader.Length + 8, 0u);
        return message;
    }

    /// <summary>Reads a header from its 12 bytes.</summary>
    public static VhostUserHeader DecodeHeader(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < VhostUserHeader.Length)
        {
            throw new ArgumentException($"A vhost-user header is {VhostUserHeader.Length} bytes; got {bytes.Length}.", nameof(bytes));
        }

        return new VhostUserHeader(
            (VhostUserRequest)MemoryMarshal.Read<uint>(bytes),
            (VhostUserHeaderFlags)MemoryMarshal.Read<uint>(bytes[4..]),
            MemoryMarshal.Read<uint>(bytes[8..]));
    }

    /// <summary>
    /// Checks a reply header before its payload is read: the same request id, version 1, the reply bit, and a size the
    /// caller expects (or at most <see cref="MaxReplyPayload"/> when <paramref name="expectedSize"/> is negative).
    /// </summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> and a message naming what was wrong.</exception>
    public static void ValidateReply(VhostUserHeader reply, VhostUserRequest expected, int expectedSize, string peer)
    {
        if (reply.Request != expected)
        {
            throw Bad(peer, $"answered {Name(expected)} with a reply to request {(uint)reply.Request} ({Name(reply.Request)})");
        }

        if ((reply.Flags & VhostUserHeaderFlags.VersionMask) != VhostUserHeaderFlags.Version1)
        {
            throw Bad(peer, $"answered {Name(expected)} with protocol version {(uint)(reply.Flags & VhostUserHeaderFlags.VersionMask)} (flags 0x{(uint)reply.Flags:x}); only version 1 exists");
        }

        if ((reply.Flags & VhostUserHeaderFlags.Reply) == 0)
        {
            throw Bad(peer, $"answered {Name(expected)} without the reply flag (flags 0x{(uint)reply.Flags:x})");
        }

        if (expectedSize >= 0 ? reply.Size != (uint)expectedSize : reply.Size > MaxReplyPayload)
        {
            string wanted = expectedSize >= 0 ? $"{expectedSize}" : $"at most {MaxReplyPayload}";
            throw Bad(peer, $"answered {Name(expected)} with a payload of {reply.Size} bytes; expected {wanted}");
        }
    }

    /// <summary>The u64 of a reply payload.</summary>
    public static ulong DecodeU64(ReadOnlySpan<byte> payload) => MemoryMarshal.Read<ulong>(payload);

    /// <summary>The (index, num) of a vring state payload.</summary>
    public static (uint Index, uint Num) DecodeVringState(ReadOnlySpan<byte> payload) =>
        (MemoryMarshal.Read<uint>(payload), MemoryMarshal.Read<uint>(payload[4..]));

    /// <summary>
    /// The bytes of a GET_CONFIG reply, after checking it echoes the requested offset and size (vhost-user.rst: the
    /// backend's payload size must match the request; a zero-length payload signals an error).
    /// </summary>
    public static byte[] DecodeConfig(ReadOnlySpan<byte> payload, uint offset, uint size, string peer)
    {
        if (payload.Length != ConfigHeaderLength + (int)size)
        {
            throw Bad(peer, $"answered GET_CONFIG with {payload.Length} bytes; expected {ConfigHeaderLength + size}");
        }

        uint gotOffset = MemoryMarshal.Read<uint>(payload);
        uint gotSize = MemoryMarshal.Read<uint>(payload[4..]);
        if (gotOffset != offset || gotSize != size)
        {
            throw Bad(peer, $"answered GET_CONFIG for offset {offset} size {size} with offset {gotOffset} size {gotSize}");
        }

        return payload[ConfigHeaderLength..].ToArray();
    }

    /// <summary>The spec's name of a request, for messages.</summary>
    public static string Name(VhostUserRequest request) => request switch
    {
        VhostUserRequest.GetFeatures => "GET_FEATURES",
        VhostUserRequest.SetFeatures => "SET_FEATURES",
        VhostUserRequest.SetOwner => "SET_OWNER",
        VhostUserRequest.SetMemTable => "SET_MEM_TABLE",
        VhostUserRequest.SetVringNum => "SET_VRING_NUM",
        VhostUserRequest.SetVringAddr => "SET_VRING_ADDR",
        VhostUserRequest.SetVringBase => "SET_VRING_BASE",
        VhostUserRequest.GetVringBase => "GET_VRING_BASE",
        VhostUserRequest.SetVringKick => "SET_VRING_KICK",
        VhostUserRequest.SetVringCall => "SET_VRING_CALL",
        VhostUserRequest.GetProtocolFeatures => "GET_PROTOCOL_FEATURES",
        VhostUserRequest.SetProtocolFeatures => "SET_PROTOCOL_FEATURES",
        VhostUserRequest.GetQueueNum => "GET_QUEUE_NUM",
        VhostUserRequest.SetVringEnable => "SET_VRING_ENABLE",
        VhostUserRequest.GetConfig => "GET_CONFIG",
        VhostUserRequest.SetStatus => "SET_STATUS",
        VhostUserRequest.GetStatus => "GET_STATUS",
        _ => $"request {(uint)request}",
    };

    private static byte[] Allocate(VhostUserRequest request, int payloadLength, bool needReply)
    {
        byte[] message = new byte[VhostUserHeader.Length + payloadLength];
        VhostUserHeaderFlags flags = VhostUserHeaderFlags.Version1 | (needReply ? VhostUserHeaderFlags.NeedReply : 0);
        Write(message, 0, (uint)request);
        Write(message, 4, (uint)flags);
        Write(message, 8, (uint)payloadLength);
        return message;
    }

    private static void Write(byte[] message, int offset, uint value) => MemoryMarshal.Write(message.AsSpan(offset), in value);

    private static void Write(byte[] message, int offset, ulong value) => MemoryMarshal.Write(message.AsSpan(offset), in value);

    private static VirtioException Bad(string peer, string what) =>
        new(VirtioErrorReason.PlatformFailure, $"{peer} {what}: not a vhost-user backend, or a broken one.");
}
