namespace VirtioNet.Net;

/// <summary>How the driver learns that the device returned buffers.</summary>
public enum OperationMode
{
    /// <summary>Wait on the device's interrupt line; used-buffer notifications are enabled while waiting.</summary>
    Interrupt,

    /// <summary>Busy-poll the used rings; notifications stay suppressed and the interrupt line is never touched.</summary>
    Poll,

    /// <summary>
    /// Hybrid: a receive wait first polls the ring for a short budget (<see cref="VirtioNetOptions.BusyPollBudget"/>)
    /// and only then asks for a notification and sleeps as <see cref="Interrupt"/> does. The budget adapts per queue to
    /// what each wait finds: frames within the budget, or many frames after a wake-up, lengthen it (dense traffic, where
    /// a sleep costs more than it saves); a sleep, or a wake-up that finds one or two frames, shortens it (sparse
    /// traffic, where polling only burns CPU). Needs an interrupt line, as interrupt mode does.
    /// </summary>
    Adaptive,
}
