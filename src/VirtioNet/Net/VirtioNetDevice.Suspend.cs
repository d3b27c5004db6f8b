using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>
/// Suspend and resume, the power-management part of a driver: <see cref="Suspend"/> quiesces the queues, resets the
/// device (so it lets go of the rings: on virtio-pci and virtio-mmio the reset disables every queue, §2.4; over
/// vhost-user the backend is told to stop each vring and gives its position back) and takes every buffer back;
/// <see cref="Resume"/> brings it up again with the features negotiated at bring-up and sends everything the control
/// plane's record says the device was told (MAC address, receive modes, MAC table, VLANs, guest offloads, queue pairs,
/// RSS or hash reporting, coalescing). What the pairs hold in the driver (rate limits, VLAN tags, statistics) and the
/// priority map are untouched. Linux's virtnet_freeze/virtnet_restore do the same around a system sleep.
/// Ref: virtio v1.2 §2.4 (device reset), §3.1.1, §3.3.1.
/// </summary>
/// <remarks>
/// The driver keeps the rings' and buffers' DMA memory while suspended (as recovery does), so a resume cannot fail for
/// want of memory and every address stays valid. While suspended, queue calls touch nothing and fail with
/// <see cref="VirtioErrorReason.DeviceRecovering"/> (with <see cref="VirtioNetOptions.AutoRecover"/> the pair's entries
/// report nothing done instead), control changes are refused with <see cref="InvalidOperationException"/>, and the
/// transmit watchdog is stopped.
/// </remarks>
public sealed partial class VirtioNetDevice
{
    // True from Suspend to Resume; written under _recoveryLock.
    private volatile bool _suspended;

    // Suspends (and resumes) done.
    private long _suspends;

    /// <summary>True between <see cref="Suspend"/> and <see cref="Resume"/>.</summary>
    public bool IsSuspended => _suspended;

    /// <summary>How many times the device was suspended.</summary>
    public long Suspends => Interlocked.Read(ref _suspends);

    /// <summary>
    /// Quiesces the device: waits for every worker to leave its queue call (later calls touch nothing until
    /// <see cref="Resume"/>), resets the device so it no longer reads or writes the rings, and takes every buffer back
    /// (transmit frames the device had not returned are dropped and counted). Any thread.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device is already suspended.</exception>
    /// <exception cref="VirtioException">
    /// <see cref="VirtioErrorReason.Timeout"/> when a worker did not leave its queue call in time (nothing was touched);
    /// otherwise the platform's failure to reset the device.
    /// </exception>
    public void Suspend()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);

        // Before the locks: a recovery the watchdog is running finishes first.
        StopWatchdog();
        int dropped;
        try
        {
            lock (_recoveryLock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_suspended)
                {
                    throw new InvalidOperationException($"{_transport.Description}: the device is already suspended.");
                }

                lock (Control.StateLock)
                {
                    QueueGate[] gates = AllGates();
                    CloseGates(gates);
                    try
                    {
                        (dropped, _) = ResetAndTakeBackBuffers();
                    }
                    catch
                    {
                        foreach (QueueGate gate in gates)
                        {
                            gate.Open();
                        }

                        throw;
                    }

                    // The gates stay closed until Resume.
                    _suspended = true;
                }
            }
        }
        catch
        {
            if (!_suspended && !_disposed)
            {
                StartWatchdog();
            }

            throw;
        }

        Interlocked.Increment(ref _suspends);
        Interlocked.Add(ref _recoveryDroppedTransmits, dropped);
        Post(VirtioNetDeviceEventKind.Suspended, dropped == 0 ? null : $"{dropped} transmit frames in flight dropped");
    }

    /// <summary>
    /// Brings a suspended device up again: §3.1.1 with the features negotiated at bring-up, the queues at the memory
    /// they had, receive buffers posted, DRIVER_OK, then everything the control plane's record says the device was told;
    /// workers' queue calls work again, the link is read again, and the transmit watchdog restarts. Any thread.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device is not suspended.</exception>
    /// <exception cref="VirtioException">
    /// The device could not be set up again (features refused, a queue gone, a control command rejected): it is then left
    /// FAILED as after a failed recovery (<see cref="RecoveryFailure"/> says why, queue calls fail with
    /// <see cref="VirtioErrorReason.DeviceNeedsReset"/>), and <see cref="Recover"/> may be tried.
    /// </exception>
    public void Resume()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_recoveryLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_suspended)
            {
                throw new InvalidOperationException($"{_transport.Description}: the device is not suspended.");
            }

            lock (Control.StateLock)
            {
                QueueGate[] gates = AllGates();

                // Cleared first: the replay goes through the control methods' own checks. Nothing else sees it yet: the
                // watchdog and the control methods wait for the locks held here, and the gates are still closed.
                _suspended = false;
                try
                {
                    SetUpAgain();
                }
                catch (Exception e) when (e is VirtioException or ArgumentException or InvalidOperationException)
                {
                    LatchFailure($"resume failed: {e.Message}", gates);
                    throw;
                }

                OpenAfterSetUp(gates);
            }
        }

        Post(VirtioNetDeviceEventKind.Resumed);
        _ = CheckLink();
        StartWatchdog();
    }

    // Every receive and transmit queue's gate.
    private QueueGate[] AllGates() => [.. _receiveQueues.Select(q => q.Gate), .. _transmitQueues.Select(q => q.Gate)];

    // Control changes need a device that is up.
    internal void ThrowIfSuspended()
    {
        if (_suspended)
        {
            throw new InvalidOperationException($"{_transport.Description}: the device is suspended; resume it before changing what it was told.");
        }
    }
}
