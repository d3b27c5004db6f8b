namespace VirtioNet.VhostUser;

/// <summary>
/// A virtio-net device on a vhost-user backend with everything it needs in one place: the shared memory, the transport
/// and the net driver, and the one recovery step after the backend went away (<see cref="Reconnect"/>: the device is
/// reopened on a new session; frames in flight at the loss are lost, as on a link that went down).
/// </summary>
/// <remarks>
/// Why the rings are never handed back where they were: a backend that restarted has no memory of the rings, and giving it
/// the old ones back (SET_VRING_BASE at the used index) is sound only for a backend that completes buffers in order and
/// keeps no other state. <see cref="Reconnect"/> opens a fresh device; <see cref="ReconnectKeepingDevice"/> (and
/// <see cref="VhostUserOptions.AutoReconnect"/>) recovers the same device, which resets every ring to index 0 at the same
/// memory, exactly what a fresh device would give the backend. Not thread-safe, like the device.
/// </remarks>
public sealed partial class VhostUserNetDevice : IDisposable
{
    // The caller's driver options, reused on every reopen.
    private readonly VirtioNetOptions _netOptions;

    private VhostUserNetDevice(VhostUserDmaAllocator memory, VhostUserTransport transport, VirtioNetOptions netOptions, VirtioNetDevice device)
    {
        Memory = memory;
        Transport = transport;
        _netOptions = netOptions;
        Device = device;
    }

    /// <summary>The shared memory rings and buffers live in.</summary>
    public VhostUserDmaAllocator Memory { get; }

    /// <summary>The transport.</summary>
    public VhostUserTransport Transport { get; }

    /// <summary>The net device; replaced by <see cref="Reconnect"/>.</summary>
    public VirtioNetDevice Device { get; private set; }

    /// <summary>Connects to the backend and opens the net device on it. Nothing stays open when it fails.</summary>
    /// <param name="options">Where the backend is.</param>
    /// <param name="netOptions">The net driver's options (default: <see cref="VirtioNetOptions"/>'s defaults).</param>
    /// <param name="memorySize">The shared region's size.</param>
    /// <param name="cancellationToken">Cancels waiting for the backend.</param>
    public static VhostUserNetDevice Open(VhostUserOptions options, VirtioNetOptions? netOptions = null, long memorySize = VhostUserDmaAllocator.DefaultSize, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        netOptions ??= new VirtioNetOptions();
        var memory = new VhostUserDmaAllocator(memorySize);
        VhostUserTransport? transport = null;
        try
        {
            transport = VhostUserTransport.Connect(options, memory, cancellationToken);
            VirtioNetDevice device = VirtioNetDevice.Open(transport, memory, netOptions);
            var session = new VhostUserNetDevice(memory, transport, netOptions, device);
            if (options.AutoReconnect)
            {
                session.StartWatcher(options.ReconnectPollInterval);
            }

            return session;
        }
        catch
        {
            transport?.Dispose();
            memory.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Disposes the device (its rings and buffers return to <see cref="Memory"/>), reconnects to the backend (waiting up
    /// to the options' ConnectTimeout for it to come back) and opens a new device, which it returns.
    /// </summary>
    /// <exception cref="VirtioException">When the backend does not come back or the device cannot be opened; call again to retry.</exception>
    public VirtioNetDevice Reconnect(CancellationToken cancellationToken = default)
    {
        Device.Dispose();
        Transport.Reconnect(cancellationToken);
        Device = VirtioNetDevice.Open(Transport, Memory, _netOptions);
        return Device;
    }

    /// <summary>Disposes the device, the transport and the memory, in that order.</summary>
    public void Dispose()
    {
        StopWatcher();
        Device.Dispose();
        Transport.Dispose();
        Memory.Dispose();
    }
}
