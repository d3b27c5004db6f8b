namespace VirtioNet.Service;

/// <summary>Which way a captured frame went, as the driver saw it.</summary>
internal enum CaptureDirection
{
    /// <summary>Received from the device (after the driver validated it), on its way to the kernel.</summary>
    Received,

    /// <summary>Queued to the device for transmission, as the driver queued it.</summary>
    Transmitted,
}
