using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The net driver against a software device (<see cref="SoftwareNetTransport"/> and <see cref="SoftwareSplitDevice"/>):
/// receive modes, transmit, and a device that lies. Real-device behaviour is covered by the QEMU integration tests.
/// </summary>
public sealed class VirtioNetDeviceTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioNetFeatures.MrgRxBuf | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact(), "the driver wrote outside a DMA allocation");
        _memory.Dispose();
    }

    private (VirtioNetDevice Net, SoftwareSplitDevice Rx, SoftwareSplitDevice Tx) Open(SoftwareNetTransport transport, VirtioNetOptions? options = null)
    {
        var net = VirtioNetDevice.Open(transport, _memory, options ?? new VirtioNetOptions { OperationMode = OperationMode.Poll });
        bool eventIdx = (net.NegotiatedFeatures & VirtioFeatures.EventIdx) != 0;
        return (net, new SoftwareSplitDevice(_memory, net.ReceiveQueue, eventIdx), new SoftwareSplitDevice(_memory, net.TransmitQueue, eventIdx));
    }

    private static byte[] Frame(int length, byte seed)
    {
        byte[] frame = new byte[length];
        for (int i = 0; i < length; i++)
        {
            frame[i] = (byte)(seed + (i * 7));
        }

        return frame;
    }

    private static byte[] Header(int headerLength, ushort numBuffers)
    {
        byte[] header = new byte[headerLength];
        if (headerLength >= 12)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(VirtioNetHeader.NumBuffersOffset), numBuffers);
        }

        return header;
    }

    [Fact]
    public void BringUpNegotiatesPostsReceiveBuffersAndSetsDriverOk()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioNetFeatures.Gso);
        var (net, rx, _) = Open(transport);
        using (net)
        {
            Assert.Equal(Modern, net.NegotiatedFeatures);
            Assert.Equal(ReceiveMode.Mergeable, net.ReceiveMode);
            Assert.Equal(12, net.HeaderLength);
            Assert.Equal(new byte[] { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, net.MacAddress.ToArray());
            Assert.True(net.IsLinkUp);
            Assert.NotEqual(0, (int)(transport.Status & VirtioDeviceStatus.DriverOk));
            Assert.Equal(256, rx.PendingAvailable);
            Assert.True(transport.NotificationCounts[0] > 0);
        }
    }

    [Fact]
    public void AMergeablePacketSpanningThreeBuffersIsJoinedInOrder()
    {
        // A 4000-byte frame needs an MTU above 1500; with MRG_RXBUF it spans three 1536-byte buffers.
        var transport = new SoftwareNetTransport(Modern | VirtioNetFeatures.Mtu);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), 9000);
        var (net, rx, _) = Open(transport);
        using (net)
        {
            byte[] frame = Frame(4000, 3);
            List<DeviceChain> chains = rx.PopAll();
            int offset = 0;
            for (int i = 0; i < 3; i++)
            {
                byte[] data = i == 0 ? [.. Header(12, 3), .. frame.AsSpan(0, Math.Min(frame.Length, (int)chains[0].WritableCapacity - 12))] : frame.AsSpan(offset, Math.Min(frame.Length - offset, (int)chains[i].WritableCapacity)).ToArray();
                offset += i == 0 ? data.Length - 12 : data.Length;
                rx.Complete(chains[i], (uint)chains[i].WriteWritable(data));
            }

            Assert.Equal(frame.Length, offset);
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
            Assert.False(net.Pairs[0].TryReceive(received, out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Packets);
            Assert.Equal(frame.Length, net.Pairs[0].ReceiveStatistics.Bytes);

            // The three buffers went back to the device.
            Assert.Equal(3, rx.PendingAvailable);
        }
    }

    [Fact]
    public void AMergeableFrameLongerThanTheMtuAllowsIsCountedAsAnError()
    {
        var (net, rx, _) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            List<DeviceChain> chains = rx.PopAll();
            rx.Complete(chains[0], (uint)chains[0].WriteWritable([.. Header(12, 2), .. Frame(1500, 1)]));
            rx.Complete(chains[1], (uint)chains[1].WriteWritable(Frame(1000, 2)));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.False(net.Pairs[0].TryReceive(received, out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(2, rx.PendingAvailable);
        }
    }

    [Fact]
    public void SmallModeUsesOneFullSizeBufferPerPacketAndTheLegacyHeader()
    {
        var transport = new SoftwareNetTransport(VirtioNetFeatures.Mac | VirtioFeatures.AnyLayout, legacy: true);
        var (net, rx, _) = Open(transport);
        using (net)
        {
            Assert.Equal(ReceiveMode.Small, net.ReceiveMode);
            Assert.Equal(10, net.HeaderLength);
            Assert.True(rx.TryPop(out DeviceChain? chain));
            Assert.Single(chain.Buffers);
            Assert.True(chain.WritableCapacity >= 10 + 1518);

            byte[] frame = Frame(1514, 9);
            rx.Complete(chain, (uint)chain.WriteWritable([.. Header(10, 0), .. frame]));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
        }
    }

    [Fact]
    public void LegacyWithoutAnyLayoutPutsTheHeaderInADescriptorOfItsOwn()
    {
        var transport = new SoftwareNetTransport(VirtioNetFeatures.Mac, legacy: true);
        var (net, rx, tx) = Open(transport);
        using (net)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            Assert.Equal(2, chain.Buffers.Count);
            Assert.Equal(10u, chain.Buffers[0].Length);

            Assert.True(net.Pairs[0].TrySend(Frame(60, 1)));
            Assert.True(tx.TryPop(out DeviceChain? sent));
            Assert.Equal(2, sent.Buffers.Count);
            Assert.Equal(10u, sent.Buffers[0].Length);
        }
    }

    [Fact]
    public void BigModeChainsPagesLargeEnoughForTheDeviceMtu()
    {
        var transport = new SoftwareNetTransport((Modern & ~VirtioNetFeatures.MrgRxBuf) | VirtioNetFeatures.Mtu);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), 9000);
        var (net, rx, _) = Open(transport);
        using (net)
        {
            Assert.Equal(ReceiveMode.Big, net.ReceiveMode);
            Assert.Equal(9000, net.Mtu);
            Assert.True(rx.TryPop(out DeviceChain? chain));
            Assert.True(chain.Indirect);
            Assert.True(chain.WritableCapacity >= 12 + 9018);
            Assert.Equal(12u, chain.Buffers[0].Length);

            byte[] frame = Frame(9014, 5);
            rx.Complete(chain, (uint)chain.WriteWritable([.. Header(12, 1), .. frame]));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
        }
    }

    [Fact]
    public void TransmitPrependsAZeroHeaderAndReclaimsCompletedBuffers()
    {
        var (net, _, tx) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            byte[] frame = Frame(98, 42);
            Assert.True(net.Pairs[0].TrySend(frame));
            Assert.True(tx.TryPop(out DeviceChain? chain));
            byte[] seen = chain.ReadReadable();
            Assert.Equal(new byte[12], seen[..12]);
            Assert.Equal(frame, seen[12..]);
            tx.Complete(chain, 0);
            Assert.Equal(1, net.Pairs[0].Reclaim());
            Assert.Equal(1, net.Pairs[0].TransmitStatistics.Packets);
        }
    }

    [Fact]
    public void AFullTransmitRingIsBackPressureNotAnError()
    {
        var transport = new SoftwareNetTransport(Modern);
        transport.QueueSizeMax[1] = 8;
        var (net, _, tx) = Open(transport);
        using (net)
        {
            byte[] frame = Frame(64, 1);
            int sent = 0;
            while (net.Pairs[0].TrySend(frame))
            {
                sent++;
            }

            Assert.Equal(8, sent);
            tx.Loopback();
            Assert.True(net.Pairs[0].TrySend(frame));
        }
    }

    [Fact]
    public void ANumBuffersOfZeroIsCountedAsAnErrorAndNothingIsDelivered()
    {
        var (net, rx, _) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            rx.Complete(chain, (uint)chain.WriteWritable([.. Header(12, 0), .. Frame(100, 1)]));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.False(net.Pairs[0].TryReceive(received, out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
            Assert.Equal(0, net.Pairs[0].ReceiveStatistics.Packets);
        }
    }

    [Fact]
    public void ANumBuffersLargerThanWhatTheDeviceReturnedIsAnErrorAndTheNextPacketStillArrives()
    {
        var (net, rx, _) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            Assert.True(rx.TryPop(out DeviceChain? lying));
            rx.Complete(lying, (uint)lying.WriteWritable([.. Header(12, 5), .. Frame(100, 1)]));
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            Assert.False(net.Pairs[0].TryReceive(received, out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);

            byte[] frame = Frame(200, 77);
            Assert.True(rx.TryPop(out DeviceChain? good));
            rx.Complete(good, (uint)good.WriteWritable([.. Header(12, 1), .. frame]));
            Assert.True(net.Pairs[0].TryReceive(received, out int length));
            Assert.Equal(frame, received.AsSpan(0, length).ToArray());
        }
    }

    [Fact]
    public void AUsedLengthShorterThanTheHeaderIsCountedAsAnError()
    {
        var (net, rx, _) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            rx.Complete(chain, 4);
            Assert.False(net.Pairs[0].TryReceive(new byte[net.Pairs[0].MaxReceiveFrameLength], out _));
            Assert.Equal(1, net.Pairs[0].ReceiveStatistics.Errors);
        }
    }

    [Fact]
    public void AUsedIdOutOfRangeBreaksTheQueueWithAClearError()
    {
        var (net, rx, _) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            rx.PushUsed(4096, 100);
            var error = Assert.Throws<VirtioException>(() => net.Pairs[0].TryReceive(new byte[net.Pairs[0].MaxReceiveFrameLength], out _));
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        }
    }

    [Fact]
    public void AUsedLengthBeyondTheBufferBreaksTheQueue()
    {
        var (net, rx, _) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            Assert.True(rx.TryPop(out DeviceChain? chain));
            rx.Complete(chain, (uint)chain.WritableCapacity + 1);
            var error = Assert.Throws<VirtioException>(() => net.Pairs[0].TryReceive(new byte[net.Pairs[0].MaxReceiveFrameLength], out _));
            Assert.Equal(VirtioErrorReason.DeviceMisbehaved, error.Reason);
        }
    }

    [Fact]
    public void AQueueSizeOfZeroFailsBringUpLeavesTheDeviceResetAndLeaksNothing()
    {
        var transport = new SoftwareNetTransport(Modern);
        transport.QueueSizeMax[1] = 0;
        var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll }));
        Assert.Equal(VirtioErrorReason.QueueUnavailable, error.Reason);
        Assert.Contains("transmitq1", error.Message, StringComparison.Ordinal);
        Assert.Contains(transport.StatusHistory, s => (s & VirtioDeviceStatus.Failed) != 0);
        Assert.Equal(VirtioDeviceStatus.Reset, transport.Status);
        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public void FeaturesRefusedAtFeaturesOkFailBringUp()
    {
        var transport = new SoftwareNetTransport(Modern) { RefuseFeatures = true };
        var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll }));
        Assert.Equal(VirtioErrorReason.FeaturesRefused, error.Reason);
        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public void AccessPlatformIsAcceptedWhenOfferedWhateverThePlatform()
    {
        // QEMU's iommu_platform=on refuses FEATURES_OK unless the driver accepts the bit (§6.1: "MAY fail to operate").
        var (net, _, _) = Open(new SoftwareNetTransport(Modern | VirtioFeatures.AccessPlatform));
        using (net)
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.AccessPlatform);
        }

        using var translating = new HeapDmaAllocator { TranslatesDeviceAddresses = true };
        using VirtioNetDevice behindIommu = VirtioNetDevice.Open(
            new SoftwareNetTransport(Modern | VirtioFeatures.AccessPlatform), translating, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Assert.NotEqual(0UL, behindIommu.NegotiatedFeatures & VirtioFeatures.AccessPlatform);
    }

    [Fact]
    public void ATranslatingPlatformRefusesADeviceWithoutAccessPlatformAndLeaksNothing()
    {
        // §6.1: without the feature the device uses CPU physical addresses untranslated; I/O virtual addresses from an
        // IOMMU platform would send it to the wrong memory.
        using var translating = new HeapDmaAllocator { TranslatesDeviceAddresses = true };
        var transport = new SoftwareNetTransport(Modern);
        var error = Assert.Throws<VirtioException>(
            () => VirtioNetDevice.Open(transport, translating, new VirtioNetOptions { OperationMode = OperationMode.Poll }));
        Assert.Equal(VirtioErrorReason.RequiredFeatureMissing, error.Reason);
        Assert.Contains("VIRTIO_F_ACCESS_PLATFORM", error.Message, StringComparison.Ordinal);
        Assert.Contains(transport.StatusHistory, status => (status & VirtioDeviceStatus.Failed) != 0);
        Assert.DoesNotContain(transport.StatusHistory, status => (status & VirtioDeviceStatus.DriverOk) != 0);
        Assert.Equal(0, translating.OutstandingAllocations);
    }

    [Fact]
    public void OrderPlatformIsAcceptedOnlyWhenThePlatformVouchesForHardwareDeviceBarriers()
    {
        var (net, _, _) = Open(new SoftwareNetTransport(Modern | VirtioFeatures.OrderPlatform));
        using (net)
        {
            Assert.NotEqual(0UL, net.NegotiatedFeatures & VirtioFeatures.OrderPlatform);
        }

        // §6.1: negotiating it promises barriers suitable for hardware devices; a platform that cannot give them
        // (.NET's barriers on Arm64 order CPUs, not bus masters) leaves the bit out and the device assumes a software peer.
        using var weak = new HeapDmaAllocator { OrdersAccessesForHardwareDevices = false };
        using VirtioNetDevice withoutDeviceBarriers = VirtioNetDevice.Open(
            new SoftwareNetTransport(Modern | VirtioFeatures.OrderPlatform), weak, new VirtioNetOptions { OperationMode = OperationMode.Poll });
        Assert.Equal(0UL, withoutDeviceBarriers.NegotiatedFeatures & VirtioFeatures.OrderPlatform);
        Assert.Equal(0UL, new VirtioNetOptions { DisabledFeatures = VirtioFeatures.OrderPlatform }.SupportedFeatures & VirtioFeatures.OrderPlatform);
    }

    [Fact]
    public void ThePlatformDefaultVouchesForDeviceOrderingOnlyOnX86()
    {
        IDmaAllocator plain = new PlainAllocator();
        bool x86 = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture is
            System.Runtime.InteropServices.Architecture.X64 or System.Runtime.InteropServices.Architecture.X86;
        Assert.Equal(x86, plain.OrdersAccessesForHardwareDevices);
        Assert.False(plain.TranslatesDeviceAddresses);
    }

    // An allocator that keeps every default of the platform seam.
    private sealed class PlainAllocator : IDmaAllocator
    {
        public DmaRegion Allocate(int length, int alignment) => throw new NotSupportedException();

        public void Free(DmaRegion region) => throw new NotSupportedException();
    }

    [Fact]
    public void AnMtuBelowSixtyEightIsAnInvalidConfiguration()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioNetFeatures.Mtu);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), 20);
        var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll }));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, error.Reason);
        Assert.Contains("MTU of 20", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutTheMacFeatureARandomLocallyAdministeredUnicastAddressIsUsed()
    {
        var (net, _, _) = Open(new SoftwareNetTransport(Modern & ~VirtioNetFeatures.Mac));
        using (net)
        {
            Assert.False(net.MacFromDevice);
            byte first = net.MacAddress.Span[0];
            Assert.Equal(2, first & 0x03);
        }
    }

    [Fact]
    public void InterruptModeWithoutAnInterruptLineIsRefused()
    {
        var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(new SoftwareNetTransport(Modern), _memory, new VirtioNetOptions { OperationMode = OperationMode.Interrupt }));
        Assert.Equal(VirtioErrorReason.InvalidConfiguration, error.Reason);
    }

    [Fact]
    public void ALinkChangeInConfigSpaceRaisesLinkStateChanged()
    {
        var transport = new SoftwareNetTransport(Modern);
        var (net, _, _) = Open(transport);
        using (net)
        {
            var events = new List<bool>();
            net.LinkStateChanged += (_, e) => events.Add(e.IsUp);
            transport.Config[VirtioNetConfig.StatusOffset] = 0;
            Assert.False(net.CheckLink());
            transport.Config[VirtioNetConfig.StatusOffset] = 1;
            Assert.True(net.CheckLink());
            Assert.True(net.CheckLink());
            Assert.Equal([false, true], events);
            Assert.True(net.IsLinkUp);
        }
    }

    [Fact]
    public void DisposeResetsTheDeviceAndReturnsEveryDmaAllocation()
    {
        var transport = new SoftwareNetTransport(Modern);
        var (net, _, _) = Open(transport);
        net.Dispose();
        Assert.Equal(VirtioDeviceStatus.Reset, transport.Status);
        Assert.Equal(0, _memory.OutstandingAllocations);
    }

    [Fact]
    public void TheSteadyStateSendAndReceivePathAllocatesNothing()
    {
        var (net, rx, tx) = Open(new SoftwareNetTransport(Modern));
        using (net)
        {
            byte[] frame = Frame(1000, 1);
            byte[] received = new byte[net.Pairs[0].MaxReceiveFrameLength];
            byte[] wire = [.. Header(12, 1), .. frame];
            void Round()
            {
                Assert.True(net.Pairs[0].TrySend(frame));
                tx.Loopback();
                Assert.True(rx.TryPop(out DeviceChain? chain));
                rx.Complete(chain, (uint)chain.WriteWritable(wire));
            }

            for (int i = 0; i < 300; i++)
            {
                Round();
                Assert.True(net.Pairs[0].TryReceive(received, out _));
            }

            // The software device allocates as it plays its part, so measure only the driver's calls.
            long allocated = 0;
            for (int i = 0; i < 300; i++)
            {
                Round();
                long before = GC.GetAllocatedBytesForCurrentThread();
                net.Pairs[0].Reclaim();
                bool got = net.Pairs[0].TryReceive(received, out _);
                allocated += GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.True(got);
            }

            Assert.Equal(0, allocated);
        }
    }
}
