namespace VirtioNet.Net;

/// <summary>How the driver learns that the device returned buffers.</summary>
public enum OperationMode
{
    /// <summary>Wait on the device's interrupt line; used-buffer notifications are enabled while waiting.</summary>
    Interrupt,

    /// <summary>Busy-poll the used rings; notifications stay suppressed and the interrupt line is never touched.</summary>
    Poll,
}
