using VirtioNet.Net;

namespace VirtioNet.Service;

/// <summary>Suspend and resume of the device behind the service (<c>vnet suspend</c>/<c>vnet resume</c>).</summary>
internal sealed partial class DeviceLink
{
    /// <summary>Where the pumps park while the device is suspended.</summary>
    public PumpPause Pause { get; } = new();

    /// <summary>True while the device is suspended.</summary>
    public bool IsSuspended => _device.IsSuspended;

    /// <summary>How many times the device was suspended.</summary>
    public long Suspends => _device.Suspends;

    /// <summary>Suspends the device (<see cref="VirtioNetDevice.Suspend"/>); the pumps must be parked first.</summary>
    public void Suspend() => _device.Suspend();

    /// <summary>Resumes the device (<see cref="VirtioNetDevice.Resume"/>) with everything it was told.</summary>
    public void Resume() => _device.Resume();
}
