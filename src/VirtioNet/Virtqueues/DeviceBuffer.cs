namespace VirtioNet.Virtqueues;

/// <summary>One buffer of a chain as the device side of a ring found it: where, how long, which direction.</summary>
/// <param name="Address">The device address the descriptor named (already checked to lie in device memory).</param>
/// <param name="Length">The length the descriptor gave.</param>
/// <param name="Writable">VIRTQ_DESC_F_WRITE was set: the device may write it; otherwise it may only read it.</param>
public readonly record struct DeviceBuffer(ulong Address, uint Length, bool Writable);
