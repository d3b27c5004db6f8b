namespace VirtioNet.Platform;

/// <summary>
/// A message-signalled interrupt (an MSI-X vector): the device raises it by writing <see cref="MessageData"/> to
/// <see cref="MessageAddress"/>, so it is edge-like and latched by whoever receives the write. The driver clears the
/// latch with <see cref="Acknowledge"/> before it looks at the device, so a message that lands afterwards is kept.
/// Ref: PCI Local Bus 3.0 §6.8.
/// </summary>
public interface IMessageInterruptLine : IInterruptLine
{
    /// <summary>The address the device writes (programmed into the vector's Message Address fields).</summary>
    ulong MessageAddress { get; }

    /// <summary>The value the device writes (programmed into the vector's Message Data field).</summary>
    uint MessageData { get; }

    /// <summary>Clears the latch. Returns true when a message had arrived since the last call.</summary>
    bool Acknowledge();
}
