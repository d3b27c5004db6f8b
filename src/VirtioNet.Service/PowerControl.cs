using System.Text.Json.Nodes;
using VirtioNet.Core;

namespace VirtioNet.Service;

/// <summary>
/// The control socket's <c>suspend</c> and <c>resume</c> (docs/CONTROL.md): the pumps parked outside the device, the
/// device suspended (reset, its buffers taken back) and the TAP's carrier off, so the kernel holds its frames as for a
/// link that is down; on resume the device is brought up again with everything it was told, the carrier follows its
/// link again and the pumps go on.
/// </summary>
internal static class PowerControl
{
    // How long the pumps may take to reach their checkpoints: one wait slice each, with room for a busy machine.
    private static readonly TimeSpan ParkTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Suspends the device of a running service.</summary>
    public static JsonObject Suspend(DeviceLink link, TapInterface tap, Action<string> log)
    {
        if (link.IsSuspended)
        {
            throw new ServiceException("the device is already suspended");
        }

        if (!link.Pause.TryPark(ParkTimeout))
        {
            throw new ServiceException($"the pumps did not stop within {ParkTimeout.TotalSeconds:0} s; nothing was suspended");
        }

        try
        {
            link.Suspend();
        }
        catch (Exception e) when (e is VirtioException or InvalidOperationException)
        {
            link.Pause.Release();
            throw new ServiceException($"suspend failed: {e.Message}", e);
        }

        tap.SetCarrier(false);
        log("device suspended: reset, buffers taken back; carrier off");
        return new JsonObject { ["suspended"] = true, ["suspends"] = link.Suspends };
    }

    /// <summary>Resumes the device of a running service.</summary>
    public static JsonObject Resume(DeviceLink link, TapInterface tap, Action<string> log)
    {
        if (!link.IsSuspended)
        {
            throw new ServiceException("the device is not suspended");
        }

        try
        {
            link.Resume();
        }
        catch (Exception e) when (e is VirtioException or InvalidOperationException)
        {
            // The device is FAILED now: the pumps go on to report it and stop the service.
            link.Pause.Release();
            throw new ServiceException($"resume failed: {e.Message}", e);
        }

        tap.SetCarrier(link.IsLinkUp);
        link.Pause.Release();
        log($"device resumed with everything it was told; carrier {(link.IsLinkUp ? "on" : "off")}");
        return new JsonObject { ["suspended"] = false, ["link"] = link.IsLinkUp ? "up" : "down" };
    }
}
