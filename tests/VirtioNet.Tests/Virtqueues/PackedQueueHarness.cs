using System.Diagnostics.CodeAnalysis;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>A packed queue on heap DMA memory with a software device attached, plus data buffers from the same memory.</summary>
internal sealed class PackedQueueHarness : QueueHarness
{
    public PackedQueueHarness(int size, bool eventIdx = false, bool indirect = false, int maxIndirectChain = VirtqueueOptions.DefaultMaxIndirectChain, bool inOrder = false)
        : base(new VirtqueueOptions
        {
            EventIdx = eventIdx,
            IndirectDesc = indirect,
            MaxIndirectChain = maxIndirectChain,
            InOrder = inOrder,
        })
    {
        Queue = new PackedVirtqueue(0, size, Memory, Options);
        Device = new SoftwarePackedDevice(Memory, Queue, eventIdx);
    }

    public PackedVirtqueue Queue { get; }

    public SoftwarePackedDevice Device { get; private set; }

    public override IVirtqueue Virtqueue => Queue;

    public override bool InOrder => Queue.InOrder;

    /// <summary>Takes every used chain back and returns the tokens in the order they came.</summary>
    public int[] TakeAllTokens() => [.. TakeAll().Select(u => u.Token)];

    public override List<DeviceChain> PopAll() => Device.PopAll();

    public override bool TryPop([NotNullWhen(true)] out DeviceChain? chain) => Device.TryPop(out chain);

    public override void Complete(DeviceChain chain, uint length) => Device.Complete(chain, length);

    public override void CompleteInOrderBatch(IReadOnlyList<DeviceChain> chains, uint lastLength) => Device.CompleteInOrderBatch(chains, lastLength);

    public override void PushUsedBatch(ushort id, uint length, int chains) => Device.PushUsed(id, length, skip: chains);

    public override void AttachNewDevice() => Device = new SoftwarePackedDevice(Memory, Queue, Options.EventIdx);
}
