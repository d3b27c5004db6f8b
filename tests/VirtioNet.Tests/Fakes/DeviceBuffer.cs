namespace VirtioNet.Tests.Fakes;

/// <summary>One buffer of a chain as the software device found it: where, how long, which direction.</summary>
/// <param name="Address">Device address the descriptor named.</param>
/// <param name="Length">Length the descriptor gave.</param>
/// <param name="Writable">VIRTQ_DESC_F_WRITE was set.</param>
public readonly record struct DeviceBuffer(ulong Address, uint Length, bool Writable);
