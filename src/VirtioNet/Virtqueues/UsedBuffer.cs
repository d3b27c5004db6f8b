namespace VirtioNet.Virtqueues;

/// <summary>A chain the device has returned: the caller's token and the number of bytes the device wrote.</summary>
/// <param name="Token">The token given when the chain was added.</param>
/// <param name="Length">Bytes written into the chain's device-writable buffers, already checked against their total length.</param>
public readonly record struct UsedBuffer(int Token, int Length);
