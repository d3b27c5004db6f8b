namespace VirtioNet.VhostUser;

/// <summary>What the transport knows about one vring: its eventfds, where it lives, and whether the backend runs it.</summary>
internal sealed class VhostUserQueue : IDisposable
{
    internal VhostUserQueue(int index)
    {
        Index = index;
        Kick = EventFileDescriptor.Create($"the kick of vring {index}");
        try
        {
            Call = EventFileDescriptor.Create($"the call of vring {index}");
        }
        catch
        {
            Kick.Dispose();
            throw;
        }
    }

    /// <summary>The vring index (0:rx0 1:tx0 2:rx1 3:tx1 ...).</summary>
    internal int Index { get; }

    /// <summary>The driver signals available buffers here (SET_VRING_KICK).</summary>
    internal EventFileDescriptor Kick { get; }

    /// <summary>The backend signals used buffers here (SET_VRING_CALL).</summary>
    internal EventFileDescriptor Call { get; }

    /// <summary>The size last set (SET_VRING_NUM).</summary>
    internal int Size { get; set; }

    /// <summary>The descriptor area's device address.</summary>
    internal ulong DescriptorArea { get; set; }

    /// <summary>The driver area's (available ring's) device address.</summary>
    internal ulong DriverArea { get; set; }

    /// <summary>The device area's (used ring's) device address.</summary>
    internal ulong DeviceArea { get; set; }

    /// <summary>True between a successful start and GET_VRING_BASE (or the loss of the backend).</summary>
    internal bool IsStarted { get; set; }

    /// <summary>The backend's next available index reported by the last GET_VRING_BASE, for a later restore.</summary>
    internal uint LastAvailIndex { get; set; }

    /// <inheritdoc />
    public void Dispose()
    {
        Kick.Dispose();
        Call.Dispose();
    }
}
