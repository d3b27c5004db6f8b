using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Tests.Fakes;
using Xunit;

namespace VirtioNet.Tests.Fuzzing;

/// <summary>
/// What <see cref="HostileDeviceFuzzer"/> found, each as a test of its own against the software transport (not a real
/// device: QEMU and DPDK never offer such queues): a device that offers a queue shorter than the longest chain the driver
/// must put in it. Before the fix the driver threw <see cref="ArgumentException"/> from deep inside bring-up or a control
/// command, or asked the allocator for 0 bytes.
/// </summary>
public sealed class HostileDeviceRegressionTests : IDisposable
{
    private const ulong Modern = VirtioFeatures.Version1 | VirtioNetFeatures.Mac | VirtioNetFeatures.Status | VirtioFeatures.IndirectDesc;

    private readonly HeapDmaAllocator _memory = new();

    public void Dispose()
    {
        Assert.True(_memory.AllGuardsIntact());
        Assert.Equal(0, _memory.OutstandingAllocations);
        _memory.Dispose();
    }

    [Fact]
    public void AReceiveQueueShorterThanOneBigModeChainIsRefusedAtBringUp()
    {
        // Big mode (no MRG_RXBUF, GUEST_TSO4) with a 9000-byte MTU: a header and 3 pages per buffer, in a queue of 2.
        var transport = new SoftwareNetTransport(Modern | VirtioNetFeatures.GuestCsum | VirtioNetFeatures.GuestTso4 | VirtioNetFeatures.Mtu);
        BinaryPrimitives.WriteUInt16LittleEndian(transport.Config.AsSpan(VirtioNetConfig.MtuOffset), 9000);
        transport.QueueSizeMax[0] = 2;

        AssertRefused(transport, "queue 0");
    }

    [Fact]
    public void ATransmitQueueOfOneDescriptorIsRefusedWhenTheHeaderNeedsItsOwn()
    {
        // A legacy device without ANY_LAYOUT: header and frame in two descriptors, in a queue of 1.
        var transport = new SoftwareNetTransport(VirtioNetFeatures.Mac | VirtioNetFeatures.Status, legacy: true);
        transport.QueueSizeMax[1] = 1;

        AssertRefused(transport, "queue 1");
    }

    [Fact]
    public void AControlQueueShorterThanOneCommandIsRefusedAtBringUp()
    {
        var transport = new SoftwareNetTransport(Modern | VirtioNetFeatures.CtrlVq | VirtioNetFeatures.CtrlRx | VirtioNetFeatures.CtrlVlan);
        transport.QueueSizeMax[2] = 2;

        AssertRefused(transport, "queue 2");
    }

    [Fact]
    public void TheFuzzerFindsNothingInTheCasesThatFoundTheseBugs()
    {
        // The seeds that first showed them (receive, transmit and control queues too short), with the fuzzer as it is now.
        foreach (int seed in new[] { 7, 35, 187, 255, 361 })
        {
            HostileDeviceFuzzer.Run(seed, 400);
        }
    }

    private void AssertRefused(SoftwareNetTransport transport, string queue)
    {
        var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, _memory, new VirtioNetOptions { OperationMode = OperationMode.Poll }));
        Assert.Equal(VirtioErrorReason.QueueUnavailable, error.Reason);
        Assert.Contains(queue, error.Message, StringComparison.Ordinal);
    }
}
