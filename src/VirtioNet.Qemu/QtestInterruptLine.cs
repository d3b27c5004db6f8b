using System.Diagnostics.CodeAnalysis;

namespace VirtioNet.Qemu;

/// <summary>
/// One interrupt input of the intercepted device (a PLIC source), seen through qtest's <c>IRQ raise N</c> /
/// <c>IRQ lower N</c> lines. QEMU reports changes only, and virtio interrupts are level-triggered: after a raise no
/// further raise comes until the driver acknowledges the cause at the device and the line is lowered.
/// </summary>
[SuppressMessage(
    "Design",
    "CA1001:Types that own disposable fields should be disposable",
    Justification = "ManualResetEventSlim needs disposing only once its WaitHandle was taken, which this type never does; lines live as long as their client.")]
public sealed class QtestInterruptLine : INotifyingInterruptLine
{
    // The callback armed, taken (exchanged for null) by whoever calls it: the reader thread on a raise or a fault, or
    // the armer when the line is already raised.
    private IInterruptCallback? _callback;

    // The client whose reader thread drives this line; asked why a wait was cut short.
    private readonly QtestClient _client;

    // Set while the line is raised, and also once the client faults so that waiters wake and learn why.
    private readonly ManualResetEventSlim _signal = new(false);

    // The level QEMU last reported.
    private volatile bool _raised;

    // Raise events seen since the line was created.
    private long _raiseCount;

    internal QtestInterruptLine(QtestClient client, int number)
    {
        _client = client;
        Number = number;
    }

    /// <inheritdoc />
    public int Number { get; }

    /// <inheritdoc />
    public bool IsRaised => _raised;

    /// <inheritdoc />
    public long RaiseCount => Interlocked.Read(ref _raiseCount);

    /// <inheritdoc />
    /// <exception cref="Core.VirtioException">When QEMU went away while waiting (or before).</exception>
    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        bool signalled = _signal.Wait(timeout, cancellationToken);
        _client.ThrowIfFaulted();

        // True even if the line was lowered again in the meantime: it was raised, and the caller polls the device.
        return signalled;
    }

    /// <inheritdoc />
    /// <remarks>
    /// The qtest reader thread calls back on <c>IRQ raise</c> (and when QEMU goes away, so that the driver finds out),
    /// which makes it the dispatcher for every line of its machine. The callback is stored before the level is read (an
    /// interlocked exchange, a full fence) and the reader stores the level before it takes the callback, so a raise is
    /// never missed by both.
    /// </remarks>
    public void RequestCallback(IInterruptCallback callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        Interlocked.Exchange(ref _callback, callback);
        if (_raised || _client.IsFaulted)
        {
            Interlocked.Exchange(ref _callback, null)?.OnInterrupt();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{_client.InterruptControllerName} line {Number} ({(IsRaised ? "raised" : "low")}, {RaiseCount} raises)";

    internal void OnRaise()
    {
        _raised = true;
        Interlocked.Increment(ref _raiseCount);
        _signal.Set();
        Interlocked.Exchange(ref _callback, null)?.OnInterrupt();
    }

    internal void OnLower()
    {
        _raised = false;
        _signal.Reset();
    }

    internal void WakeForFault()
    {
        _signal.Set();
        Interlocked.Exchange(ref _callback, null)?.OnInterrupt();
    }
}
