using System.Diagnostics.CodeAnalysis;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>A split queue on heap DMA memory with a software device attached, plus data buffers from the same memory.</summary>
internal sealed class SplitQueueHarness : QueueHarness
{
    public SplitQueueHarness(int size, bool eventIdx = false, bool indirect = false, int legacyAlign = 0, int maxIndirectChain = VirtqueueOptions.DefaultMaxIndirectChain, bool inOrder = false)
        : base(new VirtqueueOptions
        {
            EventIdx = eventIdx,
            IndirectDesc = indirect,
            LegacyQueueAlign = legacyAlign,
            MaxIndirectChain = maxIndirectChain,
            InOrder = inOrder,
        })
    {
        Queue = new SplitVirtqueue(0, size, Memory, Options);
        Device = new SoftwareSplitDevice(Memory, Queue, eventIdx);
    }

    public SplitVirtqueue Queue { get; }

    public SoftwareSplitDevice Device { get; private set; }

    public override IVirtqueue Virtqueue => Queue;

    public override bool InOrder => Queue.InOrder;

    public override List<DeviceChain> PopAll() => Device.PopAll();

    public override bool TryPop([NotNullWhen(true)] out DeviceChain? chain) => Device.TryPop(out chain);

    public override void Complete(DeviceChain chain, uint length) => Device.Complete(chain, length);

    public override void CompleteInOrderBatch(IReadOnlyList<DeviceChain> chains, uint lastLength) => Device.CompleteInOrderBatch(chains, lastLength);

    public override void PushUsedBatch(ushort id, uint length, int chains) => Device.PushUsedBatch(id, length, chains);

    public override void AttachNewDevice() => Device = new SoftwareSplitDevice(Memory, Queue, Options.EventIdx);
}
