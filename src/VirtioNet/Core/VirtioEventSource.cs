using System.Diagnostics.Tracing;

namespace VirtioNet.Core;

/// <summary>
/// The driver's warnings and errors, as the in-box tracing of .NET carries them: an <see cref="EventSource"/> named
/// "VirtioNet" (dotnet-trace, PerfView, an in-process <see cref="EventListener"/>, or a logging bridge of the caller's).
/// The library writes nothing to the console and takes no logging package; nothing here is on the packet path (a queue
/// breaks, a device is recovered, a recovery fails: each once).
/// </summary>
[EventSource(Name = "VirtioNet")]
internal sealed class VirtioEventSource : EventSource
{
    /// <summary>The one instance.</summary>
    public static readonly VirtioEventSource Log = new();

    private VirtioEventSource()
    {
    }

    /// <summary>A device event that is not trouble: link up or down, an announcement asked for, a configuration change.</summary>
    [Event(1, Level = EventLevel.Informational, Message = "{0}: {1}")]
    public void DeviceEvent(string device, string kind) => WriteEvent(1, device, kind);

    /// <summary>
    /// A device found unsound: it set DEVICE_NEEDS_RESET, or a queue was latched broken because the device wrote
    /// something impossible into it. Ref: virtio v1.2 §2.1.2.
    /// </summary>
    [Event(2, Level = EventLevel.Warning, Message = "{0}: {1}")]
    public void QueueBroken(string device, string detail) => WriteEvent(2, device, detail);

    /// <summary>A device was reset and set up again.</summary>
    [Event(3, Level = EventLevel.Warning, Message = "{0}: recovered after {1}")]
    public void Recovered(string device, string cause) => WriteEvent(3, device, cause);

    /// <summary>A recovery failed: the device is left FAILED.</summary>
    [Event(4, Level = EventLevel.Error, Message = "{0}: {1}")]
    public void RecoveryFailed(string device, string failure) => WriteEvent(4, device, failure);

    /// <summary>
    /// The driver refused what a device wrote into a ring (an id out of range, a chain that is not outstanding, an index
    /// that jumped) and latched the queue broken: a hostile or buggy device.
    /// </summary>
    [Event(5, Level = EventLevel.Error, Message = "queue {0}: {1}")]
    public void DeviceMisbehaved(int queue, string reason) => WriteEvent(5, queue, reason);
}
