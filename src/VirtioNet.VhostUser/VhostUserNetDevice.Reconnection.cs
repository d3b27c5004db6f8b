namespace VirtioNet.VhostUser;

/// <summary>
/// Reconnection that keeps the device object: the transport connects again (or waits for the backend to connect again)
/// and the device is recovered on the new session (<see cref="VirtioNetDevice.Recover"/>: the features of bring-up, the
/// rings at their memory from index 0, receive buffers posted, and everything the control plane's record holds sent
/// again: MAC address, receive modes, MAC table, VLANs, queue pairs, RSS, coalescing). What the driver keeps beside the
/// device (each pair's rate limit and VLAN tag, the priority map, statistics) is simply still there.
/// </summary>
public sealed partial class VhostUserNetDevice
{
    // The watcher of VhostUserOptions.AutoReconnect, and what stops it.
    private Thread? _watcher;
    private CancellationTokenSource? _stopWatcher;

    // Reconnections the watcher completed.
    private int _autoReconnects;

    // Why the watcher's last attempt failed (it tries again), or null.
    private string? _lastReconnectFailure;

    /// <summary>How many times the watcher of <see cref="VhostUserOptions.AutoReconnect"/> reconnected and recovered the device.</summary>
    public int AutoReconnects => Volatile.Read(ref _autoReconnects);

    /// <summary>Why the watcher's last attempt to reconnect failed (it goes on trying), or null.</summary>
    public string? LastReconnectFailure => Volatile.Read(ref _lastReconnectFailure);

    /// <summary>
    /// Connects to the backend again (waiting up to the options' ConnectTimeout for it to come back) and recovers the same
    /// device on the new session, with everything it was told; its link is read again (a LinkUp event when it was down).
    /// Frames in flight at the loss are dropped and counted, as on a link that went down.
    /// </summary>
    /// <exception cref="VirtioException">When the backend does not come back or refuses the device's features; call again to retry.</exception>
    public void ReconnectKeepingDevice(CancellationToken cancellationToken = default)
    {
        Transport.Reconnect(cancellationToken);
        Device.Recover();
        _ = Device.CheckLink();
    }

    private void StartWatcher(TimeSpan interval)
    {
        _stopWatcher = new CancellationTokenSource();
        CancellationToken stop = _stopWatcher.Token;
        _watcher = new Thread(() => Watch(interval, stop)) { IsBackground = true, Name = "vhost-user reconnect" };
        _watcher.Start();
    }

    private void StopWatcher()
    {
        if (_stopWatcher is null)
        {
            return;
        }

        _stopWatcher.Cancel();
        _watcher?.Join();
        _stopWatcher.Dispose();
        _stopWatcher = null;
    }

    // Looks at the link (a non-blocking poll of the socket) every interval; on a loss, reconnects until it works or the
    // session is disposed.
    private void Watch(TimeSpan interval, CancellationToken stop)
    {
        while (!stop.WaitHandle.WaitOne(interval))
        {
            try
            {
                if (Device.CheckLink() || Transport.IsConnected)
                {
                    continue;
                }

                ReconnectKeepingDevice(stop);
                Interlocked.Increment(ref _autoReconnects);
                Volatile.Write(ref _lastReconnectFailure, null);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is VirtioException or InvalidOperationException)
            {
                // The backend is not back yet (or went away again during the set-up): the next round tries again.
                Volatile.Write(ref _lastReconnectFailure, e.Message);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }
}
