namespace VirtioNet.Service;

/// <summary>
/// The two pumps of one queue pair, each a thread of its own: device to kernel (wait for received frames, write them to
/// TAP queue i) and kernel to device (wait until TAP queue i is readable, read frames into transmit buffers and queue
/// them). Each thread alone touches its direction of the pair, as the driver's threading contract asks, and neither
/// allocates per frame. Back-pressure: a full transmit ring stops the kernel-to-device pump reading, so the kernel's
/// TAP queue holds its frames (and, once full, the kernel's qdisc pushes back on its sockets).
/// </summary>
internal sealed class PairPump : IDisposable
{
    // How long one wait lasts before the pump looks at cancellation again.
    private static readonly TimeSpan WaitSlice = TimeSpan.FromMilliseconds(200);

    // Pair 0 looks at announcement requests this often while the TAP is quiet.
    private const int AnnounceSliceMilliseconds = 50;

    // While its device is away, a pump looks at the link this often; a failed queue call waits this long for the link
    // to go down before it counts as a real failure.
    private const int LinkSliceMilliseconds = 50;
    private const int LinkDownPatience = 2000;

    private readonly DeviceLink.PairPort _port;

    // Where both threads park while the device is suspended (PowerControl).
    private readonly PumpPause _pause;
    private readonly TapQueue _tap;

    // Pair 0's only: the announcements it sends when the device asks.
    private readonly Announcer? _announcer;
    private readonly CancellationToken _stopping;
    private readonly Action<string> _log;
    private readonly Action<Exception> _failed;
    private readonly Thread _toKernel;
    private readonly Thread _fromKernel;

    // The CPU both threads are pinned to, or null to let the scheduler choose.
    private readonly int? _cpu;

    // The device and whether it comes back by itself after losing its backend (TapServiceOptions.DeviceReconnects).
    private readonly DeviceLink _link;
    private readonly bool _deviceReconnects;

    public PairPump(DeviceLink link, TapQueue tap, Announcer? announcer, Action<string> log, Action<Exception> failed, CancellationToken stopping, int burst = DeviceLink.PairPort.DefaultBurst, int? cpu = null, bool deviceReconnects = false)
    {
        _port = link.OpenPair(tap.Index, burst);
        _link = link;
        _deviceReconnects = deviceReconnects;
        _cpu = cpu;
        _pause = link.Pause;
        _tap = tap;
        _announcer = announcer;
        _stopping = stopping;
        _log = log;
        _failed = failed;
        _toKernel = new Thread(RunToKernel) { IsBackground = true, Name = $"vnet rx{tap.Index}" };
        _fromKernel = new Thread(RunFromKernel) { IsBackground = true, Name = $"vnet tx{tap.Index}" };
    }

    /// <summary>What this pair moved and dropped.</summary>
    public PumpCounters Counters { get; } = new();

    public void Start()
    {
        _toKernel.Start();
        _fromKernel.Start();
    }

    /// <summary>Waits for both threads to end (after the stopping token fired); false when one did not within the timeout.</summary>
    public bool Join(TimeSpan timeout) => _toKernel.Join(timeout) & _fromKernel.Join(timeout);

    public void Dispose() => _port.Dispose();

    private void RunToKernel() => Guard(() =>
    {
        bool first = true;
        long baseline = GC.GetAllocatedBytesForCurrentThread();
        while (!_stopping.IsCancellationRequested)
        {
            _pause.Checkpoint(_stopping);
            if (!_port.WaitForFrames(WaitSlice, _stopping))
            {
                continue;
            }

            if (_port.DeviceToKernel(_tap, Counters) > 0 && first)
            {
                first = false;
                _log($"queue {_tap.Index}: first frame from the device delivered to the kernel");
            }

            Counters.SetToKernelAllocated(GC.GetAllocatedBytesForCurrentThread() - baseline);
        }
    });

    private void RunFromKernel() => Guard(() =>
    {
        bool first = true;
        long baseline = GC.GetAllocatedBytesForCurrentThread();
        while (!_stopping.IsCancellationRequested)
        {
            _pause.Checkpoint(_stopping);
            if (_announcer is not null && _announcer.TakeRequest())
            {
                IReadOnlyList<System.Net.IPAddress> addresses = _announcer.Addresses;
                _port.Announce(addresses, Counters, _stopping);
                _log($"announced {string.Join(", ", addresses)} (gratuitous ARP, unsolicited NA)");
            }

            if (!_tap.WaitReadable(_announcer is null ? (int)WaitSlice.TotalMilliseconds : AnnounceSliceMilliseconds))
            {
                continue;
            }

            // Drain what the TAP holds, a burst at a time, before waiting again.
            while (!_stopping.IsCancellationRequested && _port.KernelToDevice(_tap, Counters, _stopping) > 0)
            {
                _pause.Checkpoint(_stopping);
                if (first && Counters.FromKernelFrames > 0)
                {
                    first = false;
                    _log($"queue {_tap.Index}: first frame from the kernel sent to the device");
                }
            }

            Counters.SetFromKernelAllocated(GC.GetAllocatedBytesForCurrentThread() - baseline);
        }
    });

    private void Guard(Action body)
    {
        _pause.Enter();
        try
        {
            if (_cpu is { } cpu)
            {
                Interop.Sched.PinCallingThread(cpu);
            }

            while (!RunUntilDeviceLost(body))
            {
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
#pragma warning disable CA1031 // A pump that fails stops the service with its message; the other threads are told through the token.
        catch (Exception e)
#pragma warning restore CA1031
        {
            if (!_stopping.IsCancellationRequested)
            {
                _failed(e);
            }
        }
        finally
        {
            _pause.Leave();
        }
    }

    // Runs the pump; false when a queue call failed because the device lost its backend and the device came back since
    // (its link went down, then up once reconnected and recovered), so the pump starts again. Frames in flight at the
    // loss were dropped by the recovery, as on a link that went down.
    private bool RunUntilDeviceLost(Action body)
    {
        try
        {
            body();
            return true;
        }
        catch (VirtioNet.Core.VirtioException e) when (_deviceReconnects && !_stopping.IsCancellationRequested && SawLinkGoDown())
        {
            _log($"queue {_tap.Index}: the device went away ({e.Message}); waiting for it to come back");
            while (!_link.IsLinkUp)
            {
                _stopping.ThrowIfCancellationRequested();
                _ = _stopping.WaitHandle.WaitOne(LinkSliceMilliseconds);
            }

            _log($"queue {_tap.Index}: the device is back");
            return false;
        }
    }

    // A failure while the backend goes away is seen by the queue call first, by the device's link a moment later (the
    // reconnection watcher reads it every few tens of milliseconds): a failure whose link never goes down is a real one.
    private bool SawLinkGoDown()
    {
        for (int i = 0; i < LinkDownPatience / LinkSliceMilliseconds && _link.IsLinkUp; i++)
        {
            _ = _stopping.WaitHandle.WaitOne(LinkSliceMilliseconds);
        }

        return !_link.IsLinkUp;
    }
}
