namespace VirtioNet.Transports;

/// <summary>One register as a dump shows it.</summary>
/// <param name="Name">The spec's name of the register, e.g. "QueueNumMax".</param>
/// <param name="Offset">Its offset in the register window.</param>
/// <param name="Value">The value read.</param>
/// <param name="Scope">What the value belongs to: "device", or "queue N" for per-queue registers.</param>
public readonly record struct RegisterValue(string Name, ulong Offset, ulong Value, string Scope);
