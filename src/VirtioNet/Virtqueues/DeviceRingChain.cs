namespace VirtioNet.Virtqueues;

/// <summary>A chain the device side of a ring took from the driver.</summary>
/// <param name="Id">
/// What goes back in the used entry: the head descriptor index (split ring) or the Buffer ID of the chain (packed ring).
/// </param>
/// <param name="BufferCount">Buffers written to the caller's span, in chain order.</param>
/// <param name="Descriptors">Ring descriptors the chain occupied (1 for an indirect chain): a packed ring's used skip.</param>
/// <param name="Indirect">The chain's buffers came from an indirect descriptor table.</param>
public readonly record struct DeviceRingChain(ushort Id, int BufferCount, int Descriptors, bool Indirect);
