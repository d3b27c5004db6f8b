namespace VirtioNet.Net;

/// <summary>The device was reset and set up again (<see cref="VirtioNetDevice.Recover"/>, or automatically).</summary>
public sealed class DeviceRecoveredEventArgs(string cause, long recoveries, int droppedTransmits, int reclaimedReceiveBuffers) : EventArgs
{
    /// <summary>What was wrong: DEVICE_NEEDS_RESET, a queue the device broke, or the caller's request.</summary>
    public string Cause { get; } = cause;

    /// <summary>Recoveries carried out so far, this one included.</summary>
    public long Recoveries { get; } = recoveries;

    /// <summary>Frames that were in the transmit queues when the device failed: they may or may not have left, and are counted as drops.</summary>
    public int DroppedTransmits { get; } = droppedTransmits;

    /// <summary>Receive buffers taken back from the device and posted again; frames the device had put in them were lost.</summary>
    public int ReclaimedReceiveBuffers { get; } = reclaimedReceiveBuffers;
}
