namespace VirtioNet.Service;

/// <summary>What <see cref="TapService"/> is asked to serve, checked by <see cref="TapService.Preflight"/> before a device starts.</summary>
internal sealed record TapServiceOptions
{
    /// <summary>The TAP interface's name (at most 15 bytes); it must not exist yet, or be a TAP a dead instance left.</summary>
    public required string TapName { get; init; }

    /// <summary>The network namespace the TAP is made in (<c>ip netns</c> name); null for the caller's own.</summary>
    public string? Namespace { get; init; }

    /// <summary>Create <see cref="Namespace"/> when it does not exist, and delete it at the end (the one-shot <see cref="Exec"/> form).</summary>
    public bool CreateNamespace { get; init; }

    /// <summary>Configure the interface's address and default route by DHCP on the device's network.</summary>
    public bool Dhcp { get; init; }

    /// <summary>Let the kernel hand over partial checksums and TSO/USO segments (TUNSETOFFLOAD); off: finished frames only.</summary>
    public bool Offloads { get; init; } = true;

    /// <summary>How long to wait for the device to show link up before giving up. Default 10 s: QEMU and vhost-user backends show link at once.</summary>
    public TimeSpan LinkTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The instance's name, which names its control socket; null: the TAP's name.</summary>
    public string? InstanceName { get; init; }

    /// <summary>The directory of the control socket (<c>NAME.sock</c>, mode 0600); null: no control socket.</summary>
    public string? ControlDirectory { get; init; }

    /// <summary>Leave the (persistent) TAP in place at a clean stop too, for a planned restart; <c>vnet down NAME</c> removes it.</summary>
    public bool Keep { get; init; }

    /// <summary>Set by <see cref="TapService.Preflight"/>: the name is held by a TAP a dead instance left, which this one attaches to.</summary>
    public bool Adopt { get; init; }
    /// <summary>Frames each pump moves per burst (<see cref="DeviceLink.PairPort.MinimumBurst"/> to <see cref="DeviceLink.PairPort.MaximumBurst"/>).</summary>
    public int BurstSize { get; init; } = DeviceLink.PairPort.DefaultBurst;

    /// <summary>The CPU of each queue pair's two pump threads (entry i for pair i), or null to let the scheduler choose.</summary>
    public IReadOnlyList<int>? PairCpus { get; init; }

    /// <summary>A shell command to run in the namespace once the interface carries traffic; the service ends with it and returns its exit code.</summary>
    public string? Exec { get; init; }

    /// <summary>
    /// The device comes back by itself after losing its backend (vhost-user with automatic reconnection): a pump whose
    /// queue call fails while the device's link goes down waits for the link to come back instead of stopping the service.
    /// </summary>
    public bool DeviceReconnects { get; init; }
}
