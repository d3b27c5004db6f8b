namespace VirtioNet.Service;

/// <summary>
/// What the pumps of one queue pair moved and dropped. Each frame counter is written by one pump thread only (the
/// device-to-kernel one or the kernel-to-device one) and read by anyone; drops by reason are interlocked, they are rare.
/// </summary>
internal sealed class PumpCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<DropReason>().Length];
    private long _toKernelFrames;
    private long _toKernelBytes;
    private long _fromKernelFrames;
    private long _fromKernelBytes;
    private long _fromKernelLarge;
    private long _ringFullWaits;

    // What each pump thread allocated on the managed heap since it started, as it last looked (once per burst).
    private long _toKernelAllocated;
    private long _fromKernelAllocated;

    /// <summary>Frames written to the TAP (the kernel received them).</summary>
    public long ToKernelFrames => Volatile.Read(ref _toKernelFrames);

    public long ToKernelBytes => Volatile.Read(ref _toKernelBytes);

    /// <summary>Frames read from the TAP and queued to the device.</summary>
    public long FromKernelFrames => Volatile.Read(ref _fromKernelFrames);

    public long FromKernelBytes => Volatile.Read(ref _fromKernelBytes);

    /// <summary>Frames from the kernel longer than the device's MTU-sized buffers (TSO/USO segments to cut).</summary>
    public long FromKernelLarge => Volatile.Read(ref _fromKernelLarge);

    /// <summary>Times the kernel-to-device pump found the transmit ring full and waited for room, holding its frames.</summary>
    public long RingFullWaits => Volatile.Read(ref _ringFullWaits);

    /// <summary>
    /// Bytes both pump threads allocated on the managed heap since they started (GC.GetAllocatedBytesForCurrentThread,
    /// read by each thread once per burst): the pumps promise 0 per frame, so this stays where start-up left it.
    /// </summary>
    public long AllocatedBytes => ToKernelAllocatedBytes + FromKernelAllocatedBytes;

    /// <summary>The device-to-kernel pump's share of <see cref="AllocatedBytes"/>.</summary>
    public long ToKernelAllocatedBytes => Volatile.Read(ref _toKernelAllocated);

    /// <summary>The kernel-to-device pump's share of <see cref="AllocatedBytes"/>.</summary>
    public long FromKernelAllocatedBytes => Volatile.Read(ref _fromKernelAllocated);

    public long Drops(DropReason reason) => Interlocked.Read(ref _drops[(int)reason]);

    public long TotalDrops => _drops.Sum(d => Interlocked.Read(ref d));

    internal void AddToKernel(int bytes)
    {
        Volatile.Write(ref _toKernelFrames, _toKernelFrames + 1);
        Volatile.Write(ref _toKernelBytes, _toKernelBytes + bytes);
    }

    internal void AddFromKernel(int bytes)
    {
        Volatile.Write(ref _fromKernelFrames, _fromKernelFrames + 1);
        Volatile.Write(ref _fromKernelBytes, _fromKernelBytes + bytes);
    }

    internal void AddFromKernelLarge() => Volatile.Write(ref _fromKernelLarge, _fromKernelLarge + 1);

    internal void AddRingFullWait() => Volatile.Write(ref _ringFullWaits, _ringFullWaits + 1);

    internal void SetToKernelAllocated(long bytes) => Volatile.Write(ref _toKernelAllocated, bytes);

    internal void SetFromKernelAllocated(long bytes) => Volatile.Write(ref _fromKernelAllocated, bytes);

    internal void AddDrop(DropReason reason) => Interlocked.Increment(ref _drops[(int)reason]);

    /// <summary>"to kernel 12 frames (1.2 KB), from kernel 10 frames (...), drops: none" for logs.</summary>
    public string Describe()
    {
        string drops = string.Join(", ", Enum.GetValues<DropReason>().Where(r => Drops(r) > 0).Select(r => $"{r} {Drops(r)}"));
        return $"to kernel {ToKernelFrames} frames ({ToKernelBytes} bytes), from kernel {FromKernelFrames} frames ({FromKernelBytes} bytes, {FromKernelLarge} larger than the MTU), " +
            $"ring-full waits {RingFullWaits}, pump allocations {AllocatedBytes} bytes, drops: {(drops.Length == 0 ? "none" : drops)}";
    }
}
