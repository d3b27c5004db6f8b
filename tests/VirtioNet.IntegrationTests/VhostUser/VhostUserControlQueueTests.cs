using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;
using VirtioNet.Platform;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// The control queue the vhost-user transport serves itself, driven by hand-written split rings against a scripted
/// backend: what it acknowledges, what it turns into SET_VRING_ENABLE, and the malformed chains it refuses.
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
        Assert.Contains("not a well-formed chain", error.Message, StringComparison.Ordinal);
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
    public void TheControlQueueAndMqAreOfferedWithoutThePackedRingAndMaxPairsIsTheOptions()
    {
        using var backend = new ScriptedVhostUserBackend((h, p) => ScriptedVhostUserBackend.Standard(
            h, p, ScriptedVhostUserBackend.DefaultFeatures | VirtioFeatures.RingPacked | VirtioNetFeatures.Mq | VirtioNetFeatures.CtrlVq,
            VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Mq, queuePairs: 8));
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = VhostUserTransport.Connect(
            new VhostUserOptions { SocketPath = backend.SocketPath, QueuePairs = 2 }, memory, TestContext.Current.CancellationToken);

        ulong offered = transport.ReadDeviceFeatures();
        Assert.Equal(VirtioNetFeatures.Mq | VirtioNetFeatures.CtrlVq, offered & (VirtioNetFeatures.Mq | VirtioNetFeatures.CtrlVq));
        Assert.Equal(0UL, offered & (VirtioFeatures.RingPacked | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.Rss | VirtioNetFeatures.CtrlMacAddr));
        Assert.Equal(2, transport.ReadConfig16(VirtioNetConfig.MaxVirtqueuePairsOffset));
        Assert.Equal(8, transport.MaxQueuePairs);
        Assert.Equal(ControlIndex, transport.ControlQueueIndex);
        Assert.Equal(0, transport.GetQueueSizeMax(ControlIndex + 1));
    }

    private static byte[]? Respond(VhostUserHeader header, byte[] payload) => ScriptedVhostUserBackend.Standard(
        header, payload, ScriptedVhostUserBackend.DefaultFeatures | VirtioNetFeatures.Mq,
        VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Mq, queuePairs: 2);

    // The handshake up to FEATURES_OK with CTRL_VQ and MQ accepted, as the net driver does it.
    private static VhostUserTransport Open(ScriptedVhostUserBackend backend, VhostUserDmaAllocator memory)
    {
        VhostUserTransport transport = VhostUserTransport.Connect(
            new VhostUserOptions { SocketPath = backend.SocketPath, QueuePairs = 2 }, memory, TestContext.Current.CancellationToken);
        transport.WriteStatus(VirtioDeviceStatus.Acknowledge | VirtioDeviceStatus.Driver);
        transport.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.Mq);
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
}
