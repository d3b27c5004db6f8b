using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Platform;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The control queue the vhost-user transport serves itself, driven by hand-written split and packed rings against a
/// scripted backend: what it acknowledges, what it turns into SET_VRING_ENABLE, and the malformed chains it refuses.
/// </summary>
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserControlQueueTests
{
    private const int RingSize = 8;
    private const int ControlIndex = 4;

    [Fact]
    public void VqPairsSetIsAcknowledgedAndEnablesTheRingsOfThosePairs()
    {
        using var backend = new ScriptedVhostUserBackend(Respond);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory);
        for (int ring = 0; ring < 4; ring++)
        {
            Ring data = Ring.Create(memory);
            transport.ActivateQueue(ring, RingSize, data.Descriptors.DeviceAddress, data.Driver.DeviceAddress, data.Device.DeviceAddress);
        }

        // §5.1.6.5.5: only the first pair runs until the driver says otherwise.
        Assert.Equal(2, backend.Received.Count(r => r == VhostUserRequest.SetVringEnable));
        Ring control = ActivateControl(transport, memory);

        DmaRegion command = memory.Allocate(64, 16);
        Span<byte> bytes = command.Span;
        bytes[0] = (byte)VirtioNetControlClass.Mq;
        bytes[1] = VirtioNetControlCommands.MqVqPairsSet;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[2..], 2);
        bytes[8] = 0xff;
        control.WriteDescriptor(0, command.DeviceAddress, 4, next: 1);
        control.WriteDescriptor(1, command.DeviceAddress + 8, 1, write: true);
        control.Publish(0);
        transport.Notify(ControlIndex);

        Assert.Equal(VirtioNetControlCommands.AckOk, command.Span[8]);
        Assert.Equal(1, control.UsedIndex);
        Assert.Equal((0u, 1u), control.UsedElement(0));
        Assert.Equal(1, control.AvailEvent);
        Assert.Equal(2, transport.EnabledQueuePairs);
        Assert.Equal(6, backend.Received.Count(r => r == VhostUserRequest.SetVringEnable));

        // Three pairs are more than max_virtqueue_pairs: refused, nothing changes.
        BinaryPrimitives.WriteUInt16LittleEndian(command.Span[2..], 3);
        control.Publish(0);
        transport.Notify(ControlIndex);
        Assert.Equal(VirtioNetControlCommands.AckErr, command.Span[8]);
        Assert.Equal(2, control.UsedIndex);
        Assert.Equal(6, backend.Received.Count(r => r == VhostUserRequest.SetVringEnable));
        Assert.Equal(2, transport.ControlCommandsServed);
    }

    [Fact]
    public void DescriptorOutsideTheSharedMemoryBreaksTheCommandInsteadOfBeingRead()
    {
        using var backend = new ScriptedVhostUserBackend(Respond);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory);
        Ring control = ActivateControl(transport, memory);

        control.WriteDescriptor(0, memory.BaseAddress + (ulong)memory.Size - 2, 4, next: 1);
        control.WriteDescriptor(1, memory.BaseAddress, 1, write: true);
        control.Publish(0);

        var error = Assert.Throws<VirtioException>(() => transport.Notify(ControlIndex));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        Assert.Equal(0, control.UsedIndex);
    }

    [Fact]
    public void ChainThatLoopsIsRefused()
    {
        using var backend = new ScriptedVhostUserBackend(Respond);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory);
        Ring control = ActivateControl(transport, memory);
        DmaRegion command = memory.Allocate(64, 16);

        control.WriteDescriptor(0, command.DeviceAddress, 2, next: 1);
        control.WriteDescriptor(1, command.DeviceAddress, 2, next: 0);
        control.Publish(0);

        var error = Assert.Throws<VirtioException>(() => transport.Notify(ControlIndex));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        Assert.Contains("a chain that loops", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HeadBeyondTheRingIsRefused()
    {
        using var backend = new ScriptedVhostUserBackend(Respond);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory);
        Ring control = ActivateControl(transport, memory);

        control.Publish(RingSize);

        var error = Assert.Throws<VirtioException>(() => transport.Notify(ControlIndex));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
    }

    [Fact]
    public void TheControlQueueAndMqAreOfferedWithThePackedRingAndMaxPairsIsTheOptions()
    {
        using var backend = new ScriptedVhostUserBackend((h, p) => ScriptedVhostUserBackend.Standard(
            h, p, ScriptedVhostUserBackend.DefaultFeatures | VirtioFeatures.RingPacked | VirtioNetFeatures.Mq | VirtioNetFeatures.CtrlVq,
            VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Mq, queuePairs: 8));
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = VhostUserTransport.Connect(
            new VhostUserOptions { SocketPath = backend.SocketPath, QueuePairs = 2 }, memory, TestContext.Current.CancellationToken);

        ulong offered = transport.ReadDeviceFeatures();
        Assert.Equal(VirtioNetFeatures.Mq | VirtioNetFeatures.CtrlVq, offered & (VirtioNetFeatures.Mq | VirtioNetFeatures.CtrlVq));
        Assert.Equal(0UL, offered & (VirtioNetFeatures.CtrlRx | VirtioNetFeatures.Rss | VirtioNetFeatures.CtrlMacAddr));

        // The control queue is served in both layouts, so the backend's packed ring stays on offer.
        Assert.NotEqual(0UL, offered & VirtioFeatures.RingPacked);
        Assert.Equal(2, transport.ReadConfig16(VirtioNetConfig.MaxVirtqueuePairsOffset));
        Assert.Equal(8, transport.MaxQueuePairs);
        Assert.Equal(ControlIndex, transport.ControlQueueIndex);
        Assert.Equal(0, transport.GetQueueSizeMax(ControlIndex + 1));
    }

    [Fact]
    public void PackedRingCommandsAreAcknowledgedInPlaceWithTheLastDescriptorsIdAcrossTheWrap()
    {
        using var backend = new ScriptedVhostUserBackend(RespondPacked);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory, packed: true);
        PackedRing control = ActivatePackedControl(transport, memory, size: 3);

        // Chains of two descriptors in a ring of three: the second command starts in slot 2 and wraps into slot 0.
        DmaRegion command = memory.Allocate(64, 16);
        for (int round = 0; round < 4; round++)
        {
            ushort pairs = (ushort)(round % 2 == 0 ? 2 : 1);
            WriteVqPairsSet(command, pairs);
            ushort id = (ushort)(40 + round);
            int head = control.Add([(command.DeviceAddress, 4u, false), (command.DeviceAddress + 8, 1u, true)], id);
            transport.Notify(ControlIndex);

            Assert.Equal(VirtioNetControlCommands.AckOk, command.Span[8]);
            Assert.True(control.IsUsed(head), $"round {round}: slot {head} was not marked used for the wrap counter in force");
            Assert.Equal((id, 1u), control.UsedElement(head));
            Assert.Equal(pairs, transport.EnabledQueuePairs);
        }

        Assert.Equal(4, transport.ControlCommandsServed);
    }

    [Fact]
    public void APackedIndirectTableIsOneSlotAndItsEntriesAreReadInSequence()
    {
        using var backend = new ScriptedVhostUserBackend(RespondPacked);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory, packed: true);
        PackedRing control = ActivatePackedControl(transport, memory, size: 4);

        DmaRegion command = memory.Allocate(64, 16);
        WriteVqPairsSet(command, 2);
        DmaRegion table = memory.Allocate(48, 16);
        PackedRing.WriteEntry(table.Span, command.DeviceAddress, 2, write: false);
        PackedRing.WriteEntry(table.Span[16..], command.DeviceAddress + 2, 2, write: false);
        PackedRing.WriteEntry(table.Span[32..], command.DeviceAddress + 8, 1, write: true);
        int head = control.AddIndirect(table.DeviceAddress, 48, id: 7);
        transport.Notify(ControlIndex);

        Assert.Equal(VirtioNetControlCommands.AckOk, command.Span[8]);
        Assert.Equal((7u, 1u), control.UsedElement(head));
        Assert.Equal(2, transport.EnabledQueuePairs);

        // The next command goes to slot 1: the indirect chain took one slot.
        WriteVqPairsSet(command, 1);
        Assert.Equal(1, control.AddIndirect(table.DeviceAddress, 48, id: 8));
        transport.Notify(ControlIndex);
        Assert.Equal(VirtioNetControlCommands.AckOk, command.Span[8]);
        Assert.Equal(1, transport.EnabledQueuePairs);
    }

    [Fact]
    public void APackedChainRunningIntoASlotTheDriverHasNotMadeAvailableIsRefused()
    {
        using var backend = new ScriptedVhostUserBackend(RespondPacked);
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = Open(backend, memory, packed: true);
        PackedRing control = ActivatePackedControl(transport, memory, size: 4);

        DmaRegion command = memory.Allocate(64, 16);
        WriteVqPairsSet(command, 2);

        // The head says NEXT, but slot 1 still carries the flags of a descriptor the device has not been given.
        control.WriteRaw(1, command.DeviceAddress + 8, 1, id: 0, flags: 2);
        control.WriteRaw(0, command.DeviceAddress, 4, id: 0, flags: (ushort)(1 | PackedRing.Avail));

        var error = Assert.Throws<VirtioException>(() => transport.Notify(ControlIndex));
        Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        Assert.Equal(0, transport.ControlCommandsServed);
    }

    // A VQ_PAIRS_SET command for `pairs` at the start of `command`, its ack byte (offset 8) preset to 0xff.
    private static void WriteVqPairsSet(DmaRegion command, ushort pairs)
    {
        Span<byte> bytes = command.Span;
        bytes[0] = (byte)VirtioNetControlClass.Mq;
        bytes[1] = VirtioNetControlCommands.MqVqPairsSet;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[2..], pairs);
        bytes[8] = 0xff;
    }

    private static byte[]? RespondPacked(VhostUserHeader header, byte[] payload) => ScriptedVhostUserBackend.Standard(
        header, payload, ScriptedVhostUserBackend.DefaultFeatures | VirtioFeatures.RingPacked | VirtioNetFeatures.Mq,
        VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Mq, queuePairs: 2);

    private static PackedRing ActivatePackedControl(VhostUserTransport transport, VhostUserDmaAllocator memory, int size)
    {
        // The data rings first (packed too), as the driver brings them up; only the first pair is enabled.
        for (int ring = 0; ring < 4; ring++)
        {
            PackedRing data = PackedRing.Create(memory, RingSize);
            transport.ActivateQueue(ring, RingSize, data.Descriptors.DeviceAddress, data.Driver.DeviceAddress, data.Device.DeviceAddress);
        }

        PackedRing control = PackedRing.Create(memory, size);
        transport.ActivateQueue(ControlIndex, size, control.Descriptors.DeviceAddress, control.Driver.DeviceAddress, control.Device.DeviceAddress);
        return control;
    }

    private static byte[]? Respond(VhostUserHeader header, byte[] payload) => ScriptedVhostUserBackend.Standard(
        header, payload, ScriptedVhostUserBackend.DefaultFeatures | VirtioNetFeatures.Mq,
        VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Mq, queuePairs: 2);

    // The handshake up to FEATURES_OK with CTRL_VQ and MQ (and RING_PACKED) accepted, as the net driver does it.
    private static VhostUserTransport Open(ScriptedVhostUserBackend backend, VhostUserDmaAllocator memory, bool packed = false)
    {
        VhostUserTransport transport = VhostUserTransport.Connect(
            new VhostUserOptions { SocketPath = backend.SocketPath, QueuePairs = 2 }, memory, TestContext.Current.CancellationToken);
        transport.WriteStatus(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Mq | (packed ? VirtioFeatures.RingPacked : 0));
        transport.WriteStatus(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver | VirtioDeviceStatus.FeaturesOk);
        Assert.True(transport.ReadStatus().HasFlag(VirtioDeviceStatus.FeaturesOk));
        return transport;
    }

    private static Ring ActivateControl(VhostUserTransport transport, VhostUserDmaAllocator memory)
    {
        Assert.Equal(ControlIndex, transport.ControlQueueIndex);
        Ring ring = Ring.Create(memory);
        int before = transport.GetQueueSizeMax(ControlIndex);
        Assert.True(before >= RingSize);
        transport.ActivateQueue(ControlIndex, RingSize, ring.Descriptors.DeviceAddress, ring.Driver.DeviceAddress, ring.Device.DeviceAddress);
        Assert.True(transport.IsQueueActive(ControlIndex));
        return ring;
    }

    // A split ring written by hand, as the driver would (§2.7).
    private sealed record Ring(DmaRegion Descriptors, DmaRegion Driver, DmaRegion Device)
    {
        public static Ring Create(VhostUserDmaAllocator memory) =>
            new(memory.Allocate(16 * RingSize, 16), memory.Allocate(6 + (2 * RingSize), 2), memory.Allocate(6 + (8 * RingSize), 4));

        public ushort UsedIndex => BinaryPrimitives.ReadUInt16LittleEndian(Device.Span[2..]);

        public ushort AvailEvent => BinaryPrimitives.ReadUInt16LittleEndian(Device.Span[(4 + (8 * RingSize))..]);

        public (uint Id, uint Length) UsedElement(int slot) =>
            (BinaryPrimitives.ReadUInt32LittleEndian(Device.Span[(4 + (8 * slot))..]), BinaryPrimitives.ReadUInt32LittleEndian(Device.Span[(8 + (8 * slot))..]));

        public void WriteDescriptor(int index, ulong address, uint length, int next = -1, bool write = false)
        {
            Span<byte> d = Descriptors.Span[(16 * index)..];
            BinaryPrimitives.WriteUInt64LittleEndian(d, address);
            BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
            BinaryPrimitives.WriteUInt16LittleEndian(d[12..], (ushort)((next >= 0 ? 1 : 0) | (write ? 2 : 0)));
            BinaryPrimitives.WriteUInt16LittleEndian(d[14..], (ushort)Math.Max(next, 0));
        }

        // Puts a head in the next available slot and bumps the index.
        public void Publish(int head)
        {
            ushort idx = BinaryPrimitives.ReadUInt16LittleEndian(Driver.Span[2..]);
            BinaryPrimitives.WriteUInt16LittleEndian(Driver.Span[(4 + (2 * (idx % RingSize)))..], (ushort)head);
            BinaryPrimitives.WriteUInt16LittleEndian(Driver.Span[2..], (ushort)(idx + 1));
        }
    }

    // A packed ring written by hand, as the driver would (§2.8), with the driver's wrap counter.
    private sealed class PackedRing(DmaRegion descriptors, DmaRegion driver, DmaRegion device, int size)
    {
        public const ushort Avail = 1 << 7;
        public const ushort Used = 1 << 15;

        private int _next;
        private bool _wrap = true;

        public DmaRegion Descriptors => descriptors;

        public DmaRegion Driver => driver;

        public DmaRegion Device => device;

        public static PackedRing Create(VhostUserDmaAllocator memory, int size) =>
            new(memory.Allocate(16 * size, 16), memory.Allocate(4, 4), memory.Allocate(4, 4), size);

        public static void WriteEntry(Span<byte> d, ulong address, uint length, bool write)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(d, address);
            BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
            BinaryPrimitives.WriteUInt16LittleEndian(d[12..], 0);
            BinaryPrimitives.WriteUInt16LittleEndian(d[14..], (ushort)(write ? 2 : 0));
        }

        // Makes a chain available from the next free slot (the head's flags last); returns the head's slot. The buffer id
        // goes into the last descriptor only, as §2.8.6 allows; the others carry a different one.
        public int Add(ReadOnlySpan<(ulong Address, uint Length, bool Write)> buffers, ushort id)
        {
            int head = _next;
            bool headWrap = _wrap;
            ushort headFlags = 0;
            for (int i = 0; i < buffers.Length; i++)
            {
                bool last = i == buffers.Length - 1;
                ushort flags = (ushort)((last ? 0 : 1) | (buffers[i].Write ? 2 : 0) | (_wrap ? Avail : Used));
                if (i == 0)
                {
                    headFlags = flags;
                    WriteRaw(_next, buffers[i].Address, buffers[i].Length, last ? id : (ushort)0xeeee, (ushort)(headWrap ? Used : Avail));
                }
                else
                {
                    WriteRaw(_next, buffers[i].Address, buffers[i].Length, last ? id : (ushort)0xeeee, flags);
                }

                if (++_next == size)
                {
                    _next = 0;
                    _wrap = !_wrap;
                }
            }

            BinaryPrimitives.WriteUInt16LittleEndian(Descriptors.Span[((16 * head) + 14)..], headFlags);
            return head;
        }

        public int AddIndirect(ulong table, uint length, ushort id)
        {
            int head = _next;
            WriteRaw(head, table, length, id, (ushort)(4 | (_wrap ? Avail : Used)));
            if (++_next == size)
            {
                _next = 0;
                _wrap = !_wrap;
            }

            return head;
        }

        public void WriteRaw(int slot, ulong address, uint length, ushort id, ushort flags)
        {
            Span<byte> d = Descriptors.Span[(16 * slot)..];
            BinaryPrimitives.WriteUInt64LittleEndian(d, address);
            BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
            BinaryPrimitives.WriteUInt16LittleEndian(d[12..], id);
            BinaryPrimitives.WriteUInt16LittleEndian(d[14..], flags);
        }

        // Used when AVAIL and USED both equal the wrap counter the slot was made available with.
        public bool IsUsed(int slot)
        {
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(Descriptors.Span[((16 * slot) + 14)..]);
            bool avail = (flags & Avail) != 0;
            return avail == ((flags & Used) != 0);
        }

        public (uint Id, uint Length) UsedElement(int slot) =>
            (BinaryPrimitives.ReadUInt16LittleEndian(Descriptors.Span[((16 * slot) + 12)..]), BinaryPrimitives.ReadUInt32LittleEndian(Descriptors.Span[((16 * slot) + 8)..]));
    }
}
