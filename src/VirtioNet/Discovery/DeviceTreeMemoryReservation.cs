namespace VirtioNet.Discovery;

/// <summary>
/// One entry of the memory reservation block: physical memory the client must not use for its own purposes
/// (firmware, the device tree blob itself). Ref: devicetree v0.4 §5.3.
/// </summary>
/// <param name="Address">The first reserved physical address.</param>
/// <param name="Size">The number of reserved bytes.</param>
public readonly record struct DeviceTreeMemoryReservation(ulong Address, ulong Size);
