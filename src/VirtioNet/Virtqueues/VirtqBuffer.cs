namespace VirtioNet.Virtqueues;

/// <summary>One element of a buffer chain handed to a virtqueue: device address, length and direction.</summary>
/// <param name="Address">The buffer's device address.</param>
/// <param name="Length">The buffer's length in bytes.</param>
/// <param name="DeviceWritable">True for a buffer the device writes (VIRTQ_DESC_F_WRITE), false for one it reads.</param>
public readonly record struct VirtqBuffer(ulong Address, uint Length, bool DeviceWritable);
