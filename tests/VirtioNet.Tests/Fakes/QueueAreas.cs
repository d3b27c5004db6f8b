using VirtioNet.Virtqueues;

namespace VirtioNet.Tests.Fakes;

/// <summary>Only the addresses of a queue, for attaching a <see cref="SoftwareSplitDevice"/> before the driver's queue object is reachable.</summary>
internal sealed class QueueAreas(int index, int size, ulong descriptorArea, ulong driverArea, ulong deviceArea) : IVirtqueue
{
    public int QueueIndex => index;

    public int Size => size;

    public ulong DescriptorArea => descriptorArea;

    public ulong DriverArea => driverArea;

    public ulong DeviceArea => deviceArea;

    public int FreeDescriptors => throw new NotSupportedException();

    public int Outstanding => throw new NotSupportedException();

    public bool IsBroken => throw new NotSupportedException();

    public bool HasUsed => throw new NotSupportedException();

    public bool TryAdd(ReadOnlySpan<VirtqBuffer> chain, int token) => throw new NotSupportedException();

    public bool KickPrepare() => throw new NotSupportedException();

    public bool TryTakeUsed(out UsedBuffer used) => throw new NotSupportedException();

    public void DisableInterrupts() => throw new NotSupportedException();

    public bool EnableInterrupts() => throw new NotSupportedException();

    public int DetachAll(Span<int> tokens) => throw new NotSupportedException();

    public VirtqueueState GetState() => throw new NotSupportedException();

    public void Dispose()
    {
    }
}
