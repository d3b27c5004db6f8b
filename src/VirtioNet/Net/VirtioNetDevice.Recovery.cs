using System.Buffers.Binary;
using VirtioNet.Core;
using VirtioNet.Net.Control;
using VirtioNet.Net.Filtering;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Virtqueues;

namespace VirtioNet.Net;

/// <summary>
/// Error recovery: a device that set DEVICE_NEEDS_RESET (§2.1.2), or a queue the driver latched broken because the
/// device wrote something impossible into it, is reset and set up again in place: same negotiated features, same
/// rings and buffers at the same DMA addresses, receive buffers posted again, and every setting the driver gave the
/// device through the control queue sent again. Ref: virtio v1.2 §2.1.2, §3.1.1, §3.3.1.
/// </summary>
/// <remarks>
/// <para>
/// Threading: recovery may start on any thread (<see cref="Recover"/>, <see cref="CheckHealth"/>, or automatically in
/// the calls named at <see cref="VirtioNetOptions.AutoRecover"/>). It first takes the lock the control methods hold, so
/// a control command on another thread either finishes before it or starts after it; then it closes every receive and
/// transmit queue's gate, waiting for a worker inside a queue call to leave. While it runs, a worker's queue call
/// touches nothing and fails with <see cref="VirtioErrorReason.DeviceRecovering"/> (the entries of
/// <see cref="VirtioNetQueuePair"/> report nothing done instead when automatic recovery is on). No thread ever sees a queue
/// half built. Frames a worker holds from the burst API stay valid and are given back as usual.
/// </para>
/// <para>
/// Legacy devices have no DEVICE_NEEDS_RESET (QEMU marks a legacy device broken and silently stops serving it): for
/// them only a queue the driver found broken is detected; <see cref="Recover"/> works the same on every transport.
/// </para>
/// </remarks>
public sealed partial class VirtioNetDevice
{
    // Serializes recoveries: two workers that see the same fault recover once.
    private readonly Lock _recoveryLock = new();

    // Recoveries carried out.
    private long _recoveries;

    // Transmit frames in flight when the device failed, summed over recoveries.
    private long _recoveryDroppedTransmits;

    // Why the last recovery failed (the device is then FAILED); null while the device is usable.
    private string? _recoveryFailure;

    /// <summary>
    /// Raised once the device has been recovered, on the thread that recovered it (a worker inside a device call, or
    /// the caller of <see cref="Recover"/>/<see cref="CheckHealth"/>), after every lock is released.
    /// </summary>
    public event EventHandler<DeviceRecoveredEventArgs>? Recovered;

    /// <summary>How many times the device was reset and set up again.</summary>
    public long Recoveries => Interlocked.Read(ref _recoveries);

    /// <summary>Transmitted frames that were still in the device's hands at a failure: dropped, and counted in the transmit queues' drops too.</summary>
    public long RecoveryDroppedTransmits => Interlocked.Read(ref _recoveryDroppedTransmits);

    /// <summary>Why the last recovery failed, leaving the device FAILED; null while the device is usable.</summary>
    public string? RecoveryFailure => Volatile.Read(ref _recoveryFailure);

    /// <summary>
    /// Checks the device now: DEVICE_NEEDS_RESET in the status register (one register read), and every queue's broken
    /// latch. Returns true when the device is sound. When it is not, and <see cref="VirtioNetOptions.AutoRecover"/> is
    /// on, recovers it before returning false; otherwise returns false and leaves recovery to <see cref="Recover"/>.
    /// Any thread.
    /// </summary>
    /// <inheritdoc cref="Recover" path="/exception"/>
    public bool CheckHealth()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string? fault = FindFault();
        if (fault is null)
        {
            return true;
        }

        Post(VirtioNetDeviceEventKind.QueueBroken, fault);

        if (_options.AutoRecover && RecoveryFailure is null)
        {
            _ = RecoverCore(fault, onlyIfFaulty: true);
        }

        return false;
    }

    /// <summary>
    /// Resets the device and sets it up again: every buffer taken back (transmit frames in flight are dropped and
    /// counted), §3.1.1 redone with the features negotiated at bring-up, the queues activated again at their DMA memory,
    /// receive buffers posted, DRIVER_OK; then the MAC address (when the driver set it), receive modes, MAC table, VLAN
    /// filter, guest offloads, active queue pairs, RSS or hash reporting, and coalescing are sent again. Statistics are
    /// kept; <see cref="Recoveries"/> counts it and <see cref="Recovered"/> reports it. Works whether or not the device
    /// asked for it, on every transport. Any thread (see the threading remarks of this type).
    /// </summary>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.Timeout"/> when a worker did not leave its queue call in time (nothing was touched);
    /// otherwise the reason the device could not be set up again (features refused, a queue gone, a control command
    /// rejected): the device is then left FAILED, <see cref="RecoveryFailure"/> says why, queue calls fail with
    /// <see cref="VirtioErrorReason.DeviceNeedsReset"/>, and <see cref="IDisposable.Dispose"/> still returns every DMA
    /// allocation. A later <see cref="Recover"/> may be tried.
    /// </exception>
    public void Recover()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _ = RecoverCore("recovery requested by the caller", onlyIfFaulty: false);
    }

    // What is wrong with the device, or null.
    private string? FindFault()
    {
        VirtioDeviceStatus status = _transport.ReadStatus();
        if ((status & VirtioDeviceStatus.DeviceNeedsReset) != 0)
        {
            return $"the device set DEVICE_NEEDS_RESET (status 0x{(byte)status:x2})";
        }

        foreach (IVirtqueue? queue in _queuesByIndex)
        {
            if (queue is { IsBroken: true })
            {
                return $"queue {queue.QueueIndex} is broken: {queue.GetState().BrokenReason}";
            }
        }

        return null;
    }

    // Automatic recovery from a device call that failed with e: true when recovery dealt with it (the caller goes on
    // as if nothing had arrived), false when the exception must reach the caller.
    internal bool TryRecoverFrom(VirtioException e)
    {
        if (!_options.AutoRecover || _disposed || RecoveryFailure is not null)
        {
            return false;
        }

        if (e.Reason == VirtioErrorReason.DeviceRecovering)
        {
            // Another thread is recovering the device; this call touched nothing.
            Thread.Yield();
            return true;
        }

        if (e.Reason is not (VirtioErrorReason.DeviceNeedsReset or VirtioErrorReason.DeviceMisbehaved))
        {
            return false;
        }

        Post(VirtioNetDeviceEventKind.QueueBroken, e.Message);

        // False when nothing was found to recover from (a lie that latched nothing): the caller sees the exception.
        return RecoverCore(e.Message, onlyIfFaulty: true);
    }

    // Health check in poll mode, where no configuration interrupt says the device needs a reset.
    private void CheckNeedsResetPolled()
    {
        if (!_transport.IsLegacy)
        {
            VirtioDeviceInitializer.CheckHealthy(_transport);
        }
    }

    // Recovers; with onlyIfFaulty, only when a fault is still there. Returns false when there was none and no other
    // thread recovered the device meanwhile.
    private bool RecoverCore(string cause, bool onlyIfFaulty)
    {
        int dropped;
        int reclaimed;
        long count;
        long before = Recoveries;
        lock (_recoveryLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_suspended)
            {
                // A suspended device is reset already; Resume sets it up.
                return false;
            }

            // Two workers may have seen the same fault: the second finds the device sound again and goes on.
            if (onlyIfFaulty && RecoveryFailure is null && FindFault() is null)
            {
                return Recoveries != before;
            }

            lock (Control.StateLock)
            {
                QueueGate[] gates = AllGates();
                CloseGates(gates);
                try
                {
                    (dropped, reclaimed) = Rebuild();
                }
                catch (Exception e) when (e is VirtioException or ArgumentException or InvalidOperationException)
                {
                    LatchFailure($"recovery after \"{cause}\" failed: {e.Message}", gates);
                    throw;
                }

                OpenAfterSetUp(gates);
            }

            count = Interlocked.Increment(ref _recoveries);
            Interlocked.Add(ref _recoveryDroppedTransmits, dropped);
        }

        // The rebuilt queues have notifications off: pending asynchronous waits end and their workers look again.
        CompleteAllAsyncWaiters();
        Post(VirtioNetDeviceEventKind.Recovered, cause);
        Recovered?.Invoke(this, new DeviceRecoveredEventArgs(cause, count, dropped, reclaimed));

        // The link as the device reports it now, with an event when it changed (a vhost-user backend that came back).
        try
        {
            _ = CheckLink();
        }
        catch (VirtioException)
        {
            // Gone again: the next look at the link says so.
        }

        return true;
    }

    // A set-up again that failed: the device FAILED, the reason kept, every queue call refused with it.
    private void LatchFailure(string failure, QueueGate[] gates)
    {
        VirtioEventSource.Log.RecoveryFailed(_transport.Description, failure);
        VirtioDeviceInitializer.Fail(_transport);
        Volatile.Write(ref _recoveryFailure, failure);
        foreach (QueueGate gate in gates)
        {
            gate.Fail(failure);
        }

        // Pending asynchronous waits end: their workers' next calls say why.
        CompleteAllAsyncWaiters();
    }

    // A set-up again that worked: the device usable, workers let in.
    private void OpenAfterSetUp(QueueGate[] gates)
    {
        Volatile.Write(ref _recoveryFailure, null);
        foreach (QueueGate gate in gates)
        {
            gate.Open();
        }
    }

    // Waits for each queue's worker to leave; a worker stuck in a call leaves the device untouched and says so.
    private void CloseGates(QueueGate[] gates)
    {
        TimeSpan timeout = _options.ControlCommandTimeout + TimeSpan.FromSeconds(1);
        for (int i = 0; i < gates.Length; i++)
        {
            if (!gates[i].TryClose(timeout))
            {
                for (int j = 0; j < i; j++)
                {
                    gates[j].Open();
                }

                throw new VirtioException(VirtioErrorReason.Timeout, $"{_transport.Description}: recovery could not start: a worker stayed inside a queue call for {timeout.TotalSeconds:0.#} s.");
            }
        }
    }

    // The reset and the set-up again, with every gate closed and the control state locked. Returns the transmit frames
    // dropped and the receive buffers taken back.
    private (int Dropped, int Reclaimed) Rebuild()
    {
        (int dropped, int reclaimed) = ResetAndTakeBackBuffers();
        SetUpAgain();
        return (dropped, reclaimed);
    }

    // The first half of a recovery, and all of a suspend: the device reset, every buffer taken back (transmit frames in
    // flight counted as drops). The rings and buffers stay the driver's, at the same DMA memory.
    private (int Dropped, int Reclaimed) ResetAndTakeBackBuffers()
    {
        // §3.3.1: reset first, so the device no longer reads or writes the rings and buffers about to be taken back.
        VirtioDeviceInitializer.Reset(_transport);

        int reclaimed = 0;
        foreach (VirtioNetReceiveQueue rx in _receiveQueues)
        {
            reclaimed += rx.ReclaimAfterQueueReset(deviceReset: true);
        }

        int dropped = 0;
        foreach (VirtioNetTransmitQueue tx in _transmitQueues)
        {
            int inFlight = tx.ReclaimAfterQueueReset(deviceReset: true);
            for (int i = 0; i < inFlight; i++)
            {
                tx.Statistics.AddDrop(VirtioNetDropReason.InFlightAtRecovery);
            }

            dropped += inFlight;
        }

        _control?.ResetAfterDeviceReset();
        return (dropped, reclaimed);
    }

    // The second half of a recovery, and all of a resume: §3.1.1 again with the features of bring-up, the queues at
    // their memory, receive buffers posted, DRIVER_OK, and the control plane's record sent again.
    private void SetUpAgain()
    {
        // §3.1.1 steps 1-6 with the features of bring-up: the header length, receive mode and ring layout stay valid.
        VirtioDeviceInitializer.Renegotiate(_transport, VirtioDeviceTypes.Network, NegotiatedFeatures);

        // Step 7: every queue at the memory it had; DetachAllAfterDeviceReset left each as new.
        for (int index = 0; index < _queuesByIndex.Length; index++)
        {
            if (_queuesByIndex[index] is not { } queue)
            {
                continue;
            }

            if (_transport.IsQueueActive(index))
            {
                throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{_transport.Description}: queue {index} is already live after a reset.");
            }

            int max = _transport.GetQueueSizeMax(index);
            if (max < queue.Size)
            {
                throw new VirtioException(VirtioErrorReason.QueueUnavailable, $"{_transport.Description}: after its reset queue {index} holds at most {max} entries; the driver's ring has {queue.Size}.");
            }

            _transport.ActivateQueue(index, queue.Size, queue.DescriptorArea, queue.DriverArea, queue.DeviceArea);
        }

        // §5.1.5: receive buffers before DRIVER_OK, notified after; interrupts as at bring-up.
        PostReceiveBuffersAndSetDriverOk();

        Control.Replay();
    }
}
