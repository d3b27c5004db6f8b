namespace VirtioNet.Net;

/// <summary>
/// One thing that happened to a device, as <see cref="VirtioNetDevice.Events"/> delivers it (beside the .NET events
/// <see cref="VirtioNetDevice.LinkStateChanged"/> and <see cref="VirtioNetDevice.Recovered"/>).
/// </summary>
/// <param name="Kind">What happened.</param>
/// <param name="Detail">Why, for <see cref="VirtioNetDeviceEventKind.QueueBroken"/> and <see cref="VirtioNetDeviceEventKind.Recovered"/>; null otherwise.</param>
public readonly record struct VirtioNetDeviceEvent(VirtioNetDeviceEventKind Kind, string? Detail = null);
